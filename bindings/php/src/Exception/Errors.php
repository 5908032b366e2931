<?php

declare(strict_types=1);

namespace Promshm\Exception;

use Promshm\Native\C;
use Promshm\Native\Library;

/** Turns a promshm_result into the exception class of its block. */
final class Errors
{
    /** Throw the exception of `$code` unless it is PROMSHM_RESULT_OK. */
    public static function check(int $code, string $context = ''): void
    {
        if ($code !== C::PROMSHM_RESULT_OK) {
            throw self::exception($code, $context);
        }
    }

    /** The exception for `$code`, with the calling thread's last-error detail. */
    public static function exception(int $code, string $context = ''): PromshmException
    {
        $ffi = Library::ffi();
        $message = (string) $ffi->promshm_result_message($code);
        $buf = $ffi->new('char[1024]');
        $len = $ffi->new('size_t');
        $detail = '';
        if ($ffi->promshm_last_error($buf, 1024, \FFI::addr($len)) === C::PROMSHM_RESULT_OK) {
            $detail = \FFI::string($buf);
        }
        if ($context !== '') {
            $detail = $detail === '' ? $context : "{$context}: {$detail}";
        }
        return self::forCode($code, $message, $detail);
    }

    /** The exception class of a code's block (1xx, 2xx, 3xx, 4xx, 9xx). */
    public static function forCode(int $code, string $message, string $detail = ''): PromshmException
    {
        return match (intdiv($code, 100)) {
            1 => new InvalidArgumentException($message, $code, $detail),
            2 => new IoException($message, $code, $detail),
            3 => new AreaException($message, $code, $detail),
            4 => new RegistryException($message, $code, $detail),
            default => new InternalException($message, $code, $detail),
        };
    }

    /** A bad argument found by the PHP side (code INVALID_ARGUMENT, 114). */
    public static function invalid(string $detail): InvalidArgumentException
    {
        return new InvalidArgumentException('invalid argument', C::PROMSHM_RESULT_INVALID_ARGUMENT, $detail);
    }
}
