<?php

declare(strict_types=1);

namespace Promshm\Exception;

/**
 * Implemented by every exception promshm throws. getCode() is the C API's
 * promshm_result code (docs/C-API.md), getResultMessage() its static text
 * and getDetail() the library's detail of the failure.
 */
interface PromshmException extends \Throwable
{
    /** The promshm_result message of the code ("invalid label name"). */
    public function getResultMessage(): string;

    /** The library's detail of this failure (promshm_last_error()). */
    public function getDetail(): string;
}
