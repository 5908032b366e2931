<?php

declare(strict_types=1);

namespace Promshm\Native;

use FFI;
use FFI\CData;
use Promshm\AreaLocator;

/**
 * Keeps this process's area, registry and family handles of each area file
 * for the life of the process, across requests.
 *
 * PHP keeps no user state from one request to the next, and opening and
 * mapping an area costs about 0.1 ms, so a php-fpm child would pay it on
 * every request. The handles are never released; their addresses are kept
 * in an environment variable of the process set with the C library's
 * setenv() (which PHP does not reset between requests), tagged with this
 * process image's identity (pid and the kernel's per-exec random bytes): a
 * process that inherits the variable (a pcntl_fork() child, a program
 * started with exec, even pcntl_exec() in place) has another identity and
 * opens its own handles. The variable holds
 * only this process's own data; code that forges it in the process itself
 * can crash the process, as code calling FFI can.
 */
final class ProcessCache
{
    private const PREFIX = 'PROMSHM_PHP_HANDLES_';

    /** The kernel's AT_RANDOM (getauxval): 16 random bytes given to each program at exec. */
    private const AT_RANDOM = 25;

    /** "pid:random" of this process image, computed once per request. */
    private static ?string $identity = null;
    private static int $identityPid = 0;

    /**
     * This process image: its pid and the 16 random bytes the kernel gave it
     * at exec (AT_RANDOM). A forked child has another pid; a program exec'd
     * in place (same pid) has other random bytes.
     */
    private static function identity(FFI $ffi): string
    {
        $pid = getmypid();
        if (self::$identity === null || self::$identityPid !== $pid) {
            $p = $ffi->getauxval(self::AT_RANDOM);
            $random = $p === 0 ? 'start' . (AreaLocator::startTime($pid) ?? 0) : bin2hex(FFI::string($ffi->cast('const char *', $p), 16));
            self::$identity = $pid . ':' . $random;
            self::$identityPid = $pid;
        }
        return self::$identity;
    }

    private static function variable(string $path): string
    {
        return self::PREFIX . substr(hash('sha256', $path), 0, 16);
    }

    /**
     * The area and registry handles this process keeps for `$path`, or null.
     *
     * @return array{0: CData, 1: CData}|null
     */
    public static function get(FFI $ffi, string $path): ?array
    {
        $value = $ffi->getenv(self::variable($path));
        if (!\is_string($value) || !preg_match('/^(\d+:\w+):([1-9]\d{0,19}):([1-9]\d{0,19}):(.*)$/s', $value, $m)) {
            return null;
        }
        if ($m[1] !== self::identity($ffi) || $m[4] !== $path) {
            return null;
        }
        return [$ffi->cast('const promshm_area *', (int) $m[2]), $ffi->cast('const promshm_registry *', (int) $m[3])];
    }

    /**
     * `$compute()`'s result, computed once per process for the same
     * `$inputs` (e.g. the zero-configuration area path, which takes reads of
     * /proc and checks of directories to find).
     *
     * @param callable(): string $compute
     */
    public static function remember(FFI $ffi, string $name, string $inputs, callable $compute): string
    {
        $var = self::PREFIX . 'V_' . substr(hash('sha256', $name . "\0" . $inputs), 0, 16);
        $value = $ffi->getenv($var);
        $prefix = self::identity($ffi) . ':';
        if (\is_string($value) && str_starts_with($value, $prefix)) {
            return substr($value, \strlen($prefix));
        }
        $result = $compute();
        if (!str_contains($result, "\0")) {
            $ffi->setenv($var, $prefix . $result, 1);
        }
        return $result;
    }

    /** The family handle this process keeps for `$key` in the area `$path`, or null. */
    public static function family(FFI $ffi, string $path, string $key): ?CData
    {
        $value = $ffi->getenv(self::familyVariable($path, $key));
        if (!\is_string($value) || !preg_match('/^(\d+:\w+):([1-9]\d{0,19})$/', $value, $m) || $m[1] !== self::identity($ffi)) {
            return null;
        }
        return $ffi->cast('const promshm_family *', (int) $m[2]);
    }

    /** Keep the family handle `$family` (never released) for `$key` in the area `$path`. */
    public static function putFamily(FFI $ffi, string $path, string $key, CData $family): void
    {
        $ffi->setenv(self::familyVariable($path, $key), self::identity($ffi) . ':' . $ffi->cast('uintptr_t', $family)->cdata, 1);
    }

    private static function familyVariable(string $path, string $key): string
    {
        return self::PREFIX . 'F_' . substr(hash('sha256', $path . "\0" . $key), 0, 24);
    }

    /** Keep `$area` and `$registry` (never released) for `$path` in this process. */
    public static function put(FFI $ffi, string $path, CData $area, CData $registry): void
    {
        $value = self::identity($ffi) . ':' . $ffi->cast('uintptr_t', $area)->cdata . ':' . $ffi->cast('uintptr_t', $registry)->cdata . ':' . $path;
        $ffi->setenv(self::variable($path), $value, 1);
    }
}
