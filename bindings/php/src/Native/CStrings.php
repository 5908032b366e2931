<?php

declare(strict_types=1);

namespace Promshm\Native;

use FFI;
use FFI\CData;
use Promshm\Exception\Errors;

/** NUL-terminated copies of PHP strings for the C API (kept alive by the caller). */
final class CStrings
{
    /** @var CData[] the buffers; keep this object alive for as long as C reads them */
    private array $keep = [];

    public function __construct(private FFI $ffi)
    {
    }

    /** A `const char *` to a copy of `$s` (which may not contain a NUL byte). */
    public function str(string $s, string $what): CData
    {
        if (str_contains($s, "\0")) {
            throw Errors::invalid("{$what} contains a NUL byte");
        }
        $n = \strlen($s);
        $buf = $this->ffi->new('char[' . ($n + 1) . ']');
        if ($n > 0) {
            FFI::memcpy($buf, $s, $n);
        }
        $this->keep[] = $buf;
        return $this->ffi->cast('const char *', $buf);
    }

    /**
     * A `const char **` array of copies of `$values` (null when empty).
     *
     * @param array<int|string|float|bool|\Stringable> $values
     */
    public function array(array $values, string $what): ?CData
    {
        $n = \count($values);
        if ($n === 0) {
            return null;
        }
        $arr = $this->ffi->new("const char *[{$n}]");
        $this->keep[] = $arr;
        $i = 0;
        foreach ($values as $v) {
            if (!\is_scalar($v) && !$v instanceof \Stringable) {
                throw Errors::invalid("{$what} must be strings, got " . get_debug_type($v));
            }
            $arr[$i++] = $this->str((string) $v, $what);
        }
        return $this->ffi->cast('const char **', $arr);
    }

    /**
     * A `double *` array of `$values` (null when empty).
     *
     * @param array<int|float> $values
     */
    public function doubles(array $values, string $what): ?CData
    {
        $n = \count($values);
        if ($n === 0) {
            return null;
        }
        $arr = $this->ffi->new("double[{$n}]");
        $this->keep[] = $arr;
        $i = 0;
        foreach ($values as $v) {
            if (!\is_int($v) && !\is_float($v)) {
                throw Errors::invalid("{$what} must be numbers, got " . get_debug_type($v));
            }
            $arr[$i++] = (float) $v;
        }
        return $this->ffi->cast('const double *', $arr);
    }
}
