<?php

declare(strict_types=1);

namespace Promshm;

use FFI;
use FFI\CData;
use Promshm\Exception\Errors;
use Promshm\Native\C;
use Promshm\Native\CStrings;
use Promshm\Native\Library;

/**
 * A promshm shared area mapped into this process (a file, or an anonymous
 * mapping shared with pcntl_fork()ed children). The handle is released
 * with close() or when the object goes; families made from it keep the
 * mapping alive until they go too.
 */
final class Area
{
    private ?CData $handle;

    private function __construct(private FFI $ffi, CData $handle, public readonly ?string $path, private bool $owned = true)
    {
        $this->handle = $handle;
    }

    /** An Area over a handle owned elsewhere (never released by this object). */
    public static function borrowed(FFI $ffi, CData $handle, ?string $path): self
    {
        return new self($ffi, $handle, $path, false);
    }

    /** The handle's address: which mapping this is (diagnostics, tests). */
    public function address(): int
    {
        return $this->ffi->cast('uintptr_t', $this->handle())->cdata;
    }

    /** Give the handle up: the caller owns it from now on; this object is closed. */
    public function release(): CData
    {
        $h = $this->handle();
        $this->handle = null;
        return $h;
    }

    /**
     * Create the area file `$path` (0600) or open it if it already holds an
     * area. `$pages` (4 KiB each, 0: 4096) and `$maxWorkers` (0: 64) apply
     * when it is created.
     */
    public static function open(string $path, int $pages = 0, int $maxWorkers = 0): self
    {
        $ffi = Library::ffi();
        $s = new CStrings($ffi);
        $opts = self::options($ffi, $pages, $maxWorkers);
        $out = $ffi->new('const promshm_area *');
        Errors::check($ffi->promshm_area_create($s->str($path, 'area path'), FFI::addr($opts), FFI::addr($out)), "area {$path}");
        return new self($ffi, $out, $path);
    }

    /** An anonymous shared area, shared with the children this process forks. */
    public static function anonymous(int $pages = 0, int $maxWorkers = 0): self
    {
        $ffi = Library::ffi();
        $opts = self::options($ffi, $pages, $maxWorkers);
        $out = $ffi->new('const promshm_area *');
        Errors::check($ffi->promshm_area_anonymous(FFI::addr($opts), FFI::addr($out)), 'anonymous area');
        return new self($ffi, $out, null);
    }

    private static function options(FFI $ffi, int $pages, int $maxWorkers): CData
    {
        foreach (['pages' => $pages, 'maxWorkers' => $maxWorkers] as $what => $v) {
            if ($v < 0 || $v > 0xFFFFFFFF) {
                throw Errors::invalid("{$what} must be a non-negative 32-bit integer, got {$v}");
            }
        }
        $opts = $ffi->new('promshm_area_options');
        $opts->size = FFI::sizeof($opts);
        $opts->pages = $pages;
        $opts->max_workers = $maxWorkers;
        return $opts;
    }

    /** The `const promshm_area *` (borrowed). */
    public function handle(): CData
    {
        return $this->handle ?? throw Errors::forCode(C::PROMSHM_RESULT_INVALID_STATE, 'invalid state', 'the area is closed');
    }

    /**
     * Every family of the area and the promshm_* self-metrics, in the
     * Prometheus text format (or OpenMetrics), after flushing this process.
     */
    public function render(int $format = C::PROMSHM_FORMAT_PROMETHEUS): string
    {
        $h = $this->handle();
        Errors::check($this->ffi->promshm_flush(), 'flush');
        $need = $this->ffi->new('size_t');
        $rc = $this->ffi->promshm_area_render($h, $format, null, 0, FFI::addr($need));
        for ($try = 0; $try < 8; $try++) {
            if ($rc !== C::PROMSHM_RESULT_BUFFER_TOO_SMALL) {
                Errors::check($rc, 'render');
            }
            $cap = $need->cdata + 65536;
            $buf = $this->ffi->new("char[{$cap}]");
            $len = $this->ffi->new('size_t');
            $rc = $this->ffi->promshm_area_render($h, $format, $buf, $cap, FFI::addr($len));
            if ($rc === C::PROMSHM_RESULT_OK) {
                return FFI::string($buf, $len->cdata);
            }
            $need = $len;
        }
        Errors::check($rc, 'render');
        return '';
    }

    /** Attach this process to a worker slot now; returns the slot index. */
    public function attach(): int
    {
        $slot = $this->ffi->new('uint32_t');
        Errors::check($this->ffi->promshm_area_attach($this->handle(), FFI::addr($slot)), 'attach');
        return $slot->cdata;
    }

    /**
     * Usage of the area and promshm's own counters.
     *
     * @return array<string, int>
     */
    public function stats(): array
    {
        $st = $this->ffi->new('promshm_area_stats');
        $st->size = FFI::sizeof($st);
        Errors::check($this->ffi->promshm_area_get_stats($this->handle(), FFI::addr($st)), 'stats');
        $out = [];
        foreach (['pages_total', 'pages_used', 'bytes_free', 'max_workers', 'families', 'series', 'refused', 'reaped_workers', 'flushes', 'dropped_updates', 'locks_taken', 'lock_timeouts', 'name_clashes'] as $f) {
            $out[$f] = $st->{$f};
        }
        return $out;
    }

    /** Release this handle (families made from the area keep the mapping alive). */
    public function close(): void
    {
        $h = $this->handle;
        $this->handle = null;
        if ($h !== null && $this->owned) {
            $this->ffi->promshm_area_free($h);
        }
    }

    public function __destruct()
    {
        $this->close();
    }
}
