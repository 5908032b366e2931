<?php

declare(strict_types=1);

namespace Promshm\Native;

use FFI;
use Promshm\Exception\InternalException;

/**
 * Loads libpromshm through PHP's FFI, once per request.
 *
 * With `ffi.enable=preload` (the php-fpm default) the declarations must have
 * been loaded by the opcache.preload script (`preload.php`, scope "promshm");
 * with `ffi.enable=true` (CLI) they are loaded here with FFI::cdef(). The
 * preloaded scope is preferred whenever it exists.
 *
 * The library file: the PHP constant PROMSHM_LIBRARY, else the environment
 * variable PROMSHM_LIBRARY, else the first of the installed locations that
 * exists, else "libpromshm.so" (the dynamic loader's search path).
 */
final class Library
{
    /** Name of the FFI scope the preload script declares. */
    public const SCOPE = 'promshm';

    /** Where scripts/install.sh and distribution packages put the library. */
    public const INSTALLED = [
        '/usr/local/lib/libpromshm.so',
        '/usr/local/lib64/libpromshm.so',
        '/usr/lib/x86_64-linux-gnu/libpromshm.so',
        '/usr/lib/aarch64-linux-gnu/libpromshm.so',
        '/usr/lib64/libpromshm.so',
        '/usr/lib/libpromshm.so',
    ];

    private static ?FFI $ffi = null;
    private static string $mode = '';

    /** The FFI object of libpromshm (loaded on first use). */
    public static function ffi(): FFI
    {
        return self::$ffi ??= self::load();
    }

    /**
     * How the library was loaded: "scope" (the preloaded FFI scope), "cdef"
     * (FFI::cdef at run time), or "" (not yet).
     */
    public static function mode(): string
    {
        return self::$mode;
    }

    /** Path of the generated declarations (include/promshm.h made FFI-ready). */
    public static function declarationsFile(): string
    {
        return __DIR__ . '/promshm.ffi.h';
    }

    /** The library file to load (see the class comment). */
    public static function libraryPath(): string
    {
        if (\defined('PROMSHM_LIBRARY') && \is_string(\constant('PROMSHM_LIBRARY')) && \constant('PROMSHM_LIBRARY') !== '') {
            return \constant('PROMSHM_LIBRARY');
        }
        $env = getenv('PROMSHM_LIBRARY');
        if (\is_string($env) && $env !== '') {
            return $env;
        }
        foreach (self::INSTALLED as $candidate) {
            if (is_file($candidate)) {
                return $candidate;
            }
        }
        return 'libpromshm.so';
    }

    /**
     * The declarations with FFI_SCOPE and FFI_LIB prepended, as FFI::load()
     * (the preload script) needs them.
     */
    public static function scopedDeclarations(?string $library = null): string
    {
        $lib = $library ?? self::libraryPath();
        if (str_contains($lib, '"') || str_contains($lib, "\n")) {
            throw new InternalException("promshm: unusable library path {$lib}", 900, 'the path holds a quote or a newline');
        }
        return '#define FFI_SCOPE "' . self::SCOPE . "\"\n#define FFI_LIB \"{$lib}\"\n" . file_get_contents(self::declarationsFile());
    }

    private static function load(): FFI
    {
        if (!\extension_loaded('ffi')) {
            throw new InternalException('promshm: the FFI extension is not loaded', 900, 'install/enable ext-ffi');
        }
        $scopeError = '';
        try {
            $ffi = FFI::scope(self::SCOPE);
            self::checkVersion($ffi, 'the preloaded scope');
            self::$mode = 'scope';
            return $ffi;
        } catch (InternalException $e) {
            throw $e;
        } catch (\Throwable $e) {
            // Not preloaded: FFI::cdef below (needs ffi.enable=true).
            $scopeError = $e->getMessage();
        }
        $decl = file_get_contents(self::declarationsFile());
        $lib = self::libraryPath();
        try {
            $ffi = FFI::cdef($decl, $lib);
        } catch (\Throwable $e) {
            $mode = (string) ini_get('ffi.enable');
            $hint = $mode === 'preload'
                ? "ffi.enable=preload and no FFI scope 'promshm' ({$scopeError}): set ffi.preload to the header tools/scope-header.php writes, or ffi.enable=true"
                : 'set PROMSHM_LIBRARY to the path of libpromshm.so';
            throw new InternalException("promshm: cannot load {$lib}: {$e->getMessage()}", 900, $hint, $e);
        }
        self::checkVersion($ffi, $lib);
        self::$mode = 'cdef';
        return $ffi;
    }

    /** The library must be the version the declarations were generated for. */
    private static function checkVersion(FFI $ffi, string $what): void
    {
        if ($ffi->promshm_version_number() !== C::PROMSHM_VERSION_NUMBER) {
            throw new InternalException(
                "promshm: {$what} is version {$ffi->promshm_version()}, these declarations are for " . C::PROMSHM_VERSION_STRING,
                900,
                'rebuild the library, or regenerate bindings/php (tools/gen_ffi.py) and the ffi.preload header (tools/scope-header.php)'
            );
        }
    }
}
