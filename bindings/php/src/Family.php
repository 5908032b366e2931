<?php

declare(strict_types=1);

namespace Promshm;

use FFI;
use FFI\CData;
use Promshm\Exception\Errors;
use Promshm\Native\C;
use Promshm\Native\CStrings;

/**
 * A registered family of the shared area and its series handles, resolved
 * once per label-value tuple and cached for the life of this object (one
 * request under php-fpm). Updates go straight to the C API.
 */
final class Family
{
    /** @var array<string, CData> series handles by label values joined with NUL */
    private array $series = [];
    private ?CData $handle;
    private int $labelCount;

    /**
     * @param string[] $labelNames
     */
    public function __construct(
        private FFI $ffi,
        CData $handle,
        public readonly int $type,
        public readonly string $name,
        public readonly array $labelNames,
        private bool $globalSet = false,
        private bool $owned = true,
    ) {
        $this->handle = $handle;
        $this->labelCount = \count($labelNames);
    }

    /**
     * The series of `$values` (the label values, in the order of the label names).
     *
     * @param array<int|string|float|bool|\Stringable> $values
     */
    public function series(array $values): CData
    {
        $key = implode("\0", $values);
        if (isset($this->series[$key]) && \count($values) === $this->labelCount) {
            return $this->series[$key];
        }
        $h = $this->handle ?? throw Errors::forCode(C::PROMSHM_RESULT_INVALID_STATE, 'invalid state', "family {$this->name} was released (used after its storage was closed)");
        $s = new CStrings($this->ffi);
        $arr = $s->array(array_values($values), "label values of {$this->name}");
        $out = $this->ffi->new('const promshm_series *');
        Errors::check($this->ffi->promshm_family_labels($h, $arr, \count($values), FFI::addr($out)), $this->name);
        return $this->series[$key] = $out;
    }

    /** Add `$value` (>= 0) to a counter series. */
    public function counterAdd(array $labels, float $value): void
    {
        $rc = $value === 1.0
            ? $this->ffi->promshm_counter_inc($this->series($labels))
            : $this->ffi->promshm_counter_add($this->series($labels), $value);
        if ($rc !== 0) {
            throw Errors::exception($rc, $this->name);
        }
    }

    /** Add `$value` (any sign) to a gauge series. */
    public function gaugeAdd(array $labels, float $value): void
    {
        $rc = $this->ffi->promshm_gauge_add($this->series($labels), $value);
        if ($rc !== 0) {
            throw Errors::exception($rc, $this->name);
        }
    }

    /**
     * Set a gauge series. In the modes that sum the processes' values
     * (sum, livesum), this process's own value is moved so that the total
     * becomes `$value` (PromPHP's global set); otherwise it is written as is.
     */
    public function gaugeSet(array $labels, float $value): void
    {
        $series = $this->series($labels);
        if ($this->globalSet) {
            $total = $this->ffi->new('double');
            $local = $this->ffi->new('double');
            Errors::check($this->ffi->promshm_gauge_get($series, FFI::addr($total)), $this->name);
            Errors::check($this->ffi->promshm_gauge_get_local($series, FFI::addr($local)), $this->name);
            $value = $local->cdata + ($value - $total->cdata);
        }
        $rc = $this->ffi->promshm_gauge_set($series, $value);
        if ($rc !== 0) {
            throw Errors::exception($rc, $this->name);
        }
    }

    /** The gauge's value as a render shows it (every process). */
    public function gaugeGet(array $labels): float
    {
        $v = $this->ffi->new('double');
        Errors::check($this->ffi->promshm_gauge_get($this->series($labels), FFI::addr($v)), $this->name);
        return $v->cdata;
    }

    /** The counter's flushed value (every process). */
    public function counterGet(array $labels): float
    {
        $v = $this->ffi->new('double');
        Errors::check($this->ffi->promshm_counter_get($this->series($labels), FFI::addr($v)), $this->name);
        return $v->cdata;
    }

    /** Record one observation in a histogram or summary series. */
    public function observe(array $labels, float $value): void
    {
        $rc = $this->type === C::PROMSHM_METRIC_TYPE_HISTOGRAM
            ? $this->ffi->promshm_histogram_observe($this->series($labels), $value)
            : $this->ffi->promshm_summary_observe($this->series($labels), $value);
        if ($rc !== 0) {
            throw Errors::exception($rc, $this->name);
        }
    }

    /** Remove every series of the family (for every process). */
    public function clear(): void
    {
        $this->releaseSeries();
        if ($this->handle !== null) {
            Errors::check($this->ffi->promshm_family_clear($this->handle, null), $this->name);
        }
    }

    private function releaseSeries(): void
    {
        foreach ($this->series as $s) {
            $this->ffi->promshm_series_free($s);
        }
        $this->series = [];
    }

    /**
     * Release the series handles and, unless the process keeps it
     * (ProcessCache), the family handle (the library flushes their buffered
     * updates; Storage's request-end flush does it in any case).
     */
    public function close(): void
    {
        $this->releaseSeries();
        $h = $this->handle;
        $this->handle = null;
        if ($h !== null && $this->owned) {
            $this->ffi->promshm_family_free($h);
        }
    }

    public function __destruct()
    {
        $this->close();
    }
}
