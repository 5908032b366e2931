<?php

declare(strict_types=1);

namespace Prometheus\Exception;

/** PromPHP's exception for a metric registered twice (declared by promshm when PromPHP is absent). */
class MetricsRegistrationException extends \Exception
{
}
