<?php

declare(strict_types=1);

namespace Promshm\Exception;

/** I/O (result codes 2xx): the area file cannot be opened or is unsafe (a symbolic link, another user's, writable by others), a write failed. */
class IoException extends \RuntimeException implements PromshmException
{
    use Details;
}
