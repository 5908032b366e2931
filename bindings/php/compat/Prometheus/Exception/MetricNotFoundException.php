<?php

declare(strict_types=1);

namespace Prometheus\Exception;

/** PromPHP's exception for getCounter()/getGauge()/... of an unregistered metric. */
class MetricNotFoundException extends \Exception
{
}
