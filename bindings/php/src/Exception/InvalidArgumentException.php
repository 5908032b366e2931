<?php

declare(strict_types=1);

namespace Promshm\Exception;

/** Bad arguments (result codes 1xx): an invalid metric or label name, a wrong label count, bad buckets or quantiles, a NaN or negative counter increment, a value of the wrong type. Extends PHP's \InvalidArgumentException, as PromPHP throws. */
class InvalidArgumentException extends \InvalidArgumentException implements PromshmException
{
    use Details;
}
