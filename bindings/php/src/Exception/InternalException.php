<?php

declare(strict_types=1);

namespace Promshm\Exception;

/** Internal (result code 900, a caught panic) and loading failures (no FFI, library not found or of another version). */
class InternalException extends \RuntimeException implements PromshmException
{
    use Details;
}
