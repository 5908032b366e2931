<?php

declare(strict_types=1);

namespace Promshm\Exception;

/** The registry (result codes 4xx): a family registered again with another shape (type, labels, buckets, ...), or a name another family renders. Extends PromPHP's MetricsRegistrationException. */
class RegistryException extends \Prometheus\Exception\MetricsRegistrationException implements PromshmException
{
    use Details;
}
