<?php

declare(strict_types=1);

namespace Promshm\Exception;

/** The shared area (result codes 3xx): full, no worker slot free, incompatible or corrupt, read-only, a lock timeout. */
class AreaException extends \RuntimeException implements PromshmException
{
    use Details;
}
