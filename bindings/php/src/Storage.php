<?php

declare(strict_types=1);

namespace Promshm;

use FFI;
use FFI\CData;
use Prometheus\MetricFamilySamples;
use Prometheus\Storage\Adapter;
use Promshm\Exception\Errors;
use Promshm\Native\C;
use Promshm\Native\CStrings;
use Promshm\Native\Library;
use Promshm\Native\ProcessCache;

/**
 * PromPHP's storage adapter backed by a promshm shared area: every process
 * (php-fpm child, CLI worker, pcntl_fork() child) that opens the same area
 * updates the same metrics, exactly, without APCu or Redis.
 *
 * `new CollectorRegistry(new \Promshm\Storage())` is all a PromPHP
 * application changes. Options (all optional):
 *
 * - `area`: an area file path or an Area; default: PROMSHM_AREA, the ini
 *   setting promshm.area, else the zero-configuration area (AreaLocator).
 * - `eager`: write every counter and histogram update straight into the
 *   area (for long-running CLI workers); default: PROMSHM_EAGER=1, else
 *   buffered per request and flushed at request end.
 * - `gaugeMode`: how the processes' gauge values combine: `sum` (default;
 *   set() moves the total to the value, as PromPHP's global gauges do),
 *   `livesum`, `max`, `min`, `mostrecent` or `all`.
 * - `pages`, `maxWorkers`: size of an area this process creates (0:
 *   the library's defaults, 4096 pages of 4 KiB and 64 worker slots);
 *   default PROMSHM_PAGES / PROMSHM_MAX_WORKERS.
 * - `persistent`: keep the area's handles for the life of the process, so
 *   the next request of a php-fpm child does not open and map it again
 *   (Native\ProcessCache); default true (PROMSHM_PERSISTENT=0: false).
 *
 * Buffered updates are flushed by a shutdown function registered on first
 * use in each request: it runs after the script ends, after exit() and
 * after a fatal error, and after the other shutdown functions.
 */
final class Storage implements Adapter
{
    /** PromPHP's default histogram buckets. */
    public const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

    /** PromPHP's default summary quantiles. */
    public const DEFAULT_QUANTILES = [0.01, 0.05, 0.5, 0.95, 0.99];

    /** PromPHP's default summary window, seconds. */
    public const DEFAULT_MAX_AGE_SECONDS = 600;

    private const GAUGE_MODES = [
        'sum' => C::PROMSHM_GAUGE_MODE_SUM,
        'livesum' => C::PROMSHM_GAUGE_MODE_LIVESUM,
        'max' => C::PROMSHM_GAUGE_MODE_MAX,
        'min' => C::PROMSHM_GAUGE_MODE_MIN,
        'mostrecent' => C::PROMSHM_GAUGE_MODE_MOSTRECENT,
        'all' => C::PROMSHM_GAUGE_MODE_ALL,
        'livemax' => C::PROMSHM_GAUGE_MODE_LIVEMAX,
        'livemin' => C::PROMSHM_GAUGE_MODE_LIVEMIN,
        'livemostrecent' => C::PROMSHM_GAUGE_MODE_LIVEMOSTRECENT,
    ];

    private FFI $ffi;
    private ?Area $area;
    private ?string $areaPath;
    /** Whether this Storage opened its area (and so closes it). */
    private bool $ownsArea;
    /** Whether the area and registry handles are kept for the process (ProcessCache). */
    private bool $persistent;
    private bool $ownsRegistry = true;
    private ?string $keptPath = null;
    private ?CData $registry = null;
    /** @var array<string, Family> */
    private array $families = [];
    private bool $eager;
    private int $gaugeMode;
    private int $pages;
    private int $maxWorkers;

    /** @var array<int, \WeakReference<Storage>> live storages, for the fatal-error path */
    private static array $live = [];
    private static bool $shutdownRegistered = false;

    /** @param array{area?: string|Area, eager?: bool, gaugeMode?: string, pages?: int, maxWorkers?: int, persistent?: bool} $options */
    public function __construct(array $options = [])
    {
        $known = ['area', 'eager', 'gaugeMode', 'pages', 'maxWorkers', 'persistent'];
        foreach (array_keys($options) as $k) {
            if (!\in_array($k, $known, true)) {
                throw Errors::invalid("unknown Storage option '{$k}' (known: " . implode(', ', $known) . ')');
            }
        }
        $this->ffi = Library::ffi();
        $area = $options['area'] ?? null;
        $this->area = $area instanceof Area ? $area : null;
        $this->areaPath = \is_string($area) ? $area : null;
        $this->ownsArea = !$area instanceof Area;
        $this->eager = (bool) ($options['eager'] ?? (getenv('PROMSHM_EAGER') === '1'));
        $mode = $options['gaugeMode'] ?? 'sum';
        if (!isset(self::GAUGE_MODES[$mode])) {
            throw Errors::invalid("unknown gaugeMode '{$mode}' (" . implode(', ', array_keys(self::GAUGE_MODES)) . ')');
        }
        $this->gaugeMode = self::GAUGE_MODES[$mode];
        $this->pages = (int) ($options['pages'] ?? (getenv('PROMSHM_PAGES') ?: 0));
        $this->maxWorkers = (int) ($options['maxWorkers'] ?? (getenv('PROMSHM_MAX_WORKERS') ?: 0));
        $this->persistent = (bool) ($options['persistent'] ?? (getenv('PROMSHM_PERSISTENT') !== '0'));
        self::$live[spl_object_id($this)] = \WeakReference::create($this);
        self::registerShutdown();
    }

    /** The area (opened on first use). */
    public function area(): Area
    {
        if ($this->area === null) {
            $path = $this->areaPath ?? AreaLocator::configured();
            if ($path === null) {
                $path = $this->persistent
                    ? ProcessCache::remember($this->ffi, 'default area', AreaLocator::inputs(), AreaLocator::defaultPath(...))
                    : AreaLocator::defaultPath();
            }
            if (!$this->persistent) {
                $this->area = Area::open($path, $this->pages, $this->maxWorkers);
                return $this->area;
            }
            $kept = ProcessCache::get($this->ffi, $path);
            if ($kept === null) {
                $area = Area::open($path, $this->pages, $this->maxWorkers);
                $reg = $this->ffi->new('const promshm_registry *');
                Errors::check($this->ffi->promshm_area_registry($area->handle(), FFI::addr($reg)), 'registry');
                $kept = [$area->release(), $reg];
                ProcessCache::put($this->ffi, $path, $kept[0], $kept[1]);
            }
            $this->area = Area::borrowed($this->ffi, $kept[0], $path);
            $this->registry = $kept[1];
            $this->ownsRegistry = false;
            $this->ownsArea = false;
            $this->keptPath = $path;
        }
        return $this->area;
    }

    /** The path of the area when its handles are kept for the process (ProcessCache), else null. */
    private function keptPath(): ?string
    {
        $this->area();
        return $this->keptPath;
    }

    /** Whether counter and histogram updates are written through. */
    public function isEager(): bool
    {
        return $this->eager;
    }

    private function registry(): CData
    {
        if ($this->registry === null) {
            $out = $this->ffi->new('const promshm_registry *');
            Errors::check($this->ffi->promshm_area_registry($this->area()->handle(), FFI::addr($out)), 'registry');
            $this->registry = $out;
        }
        return $this->registry;
    }

    /**
     * The counter family `$name` (a trailing `_total` is dropped: the
     * exposition adds it), registered on first use.
     *
     * @param string[] $labelNames
     */
    public function counter(string $name, string $help, array $labelNames = []): Family
    {
        if (str_ends_with($name, '_total') && $name !== '_total') {
            $name = substr($name, 0, -6);
        }
        return $this->family(C::PROMSHM_METRIC_TYPE_COUNTER, $name, $help, $labelNames, []);
    }

    /** @param string[] $labelNames */
    public function gauge(string $name, string $help, array $labelNames = [], ?string $mode = null): Family
    {
        if ($mode !== null && !isset(self::GAUGE_MODES[$mode])) {
            throw Errors::invalid("unknown gauge mode '{$mode}'");
        }
        $m = $mode === null ? $this->gaugeMode : self::GAUGE_MODES[$mode];
        return $this->family(C::PROMSHM_METRIC_TYPE_GAUGE, $name, $help, $labelNames, [$m]);
    }

    /**
     * @param string[]        $labelNames
     * @param float[]|null    $buckets    null: PromPHP's defaults
     */
    public function histogram(string $name, string $help, array $labelNames = [], ?array $buckets = null): Family
    {
        return $this->family(C::PROMSHM_METRIC_TYPE_HISTOGRAM, $name, $help, $labelNames, array_values($buckets ?? self::DEFAULT_BUCKETS));
    }

    /**
     * @param string[]     $labelNames
     * @param float[]|null $quantiles  null: PromPHP's defaults
     */
    public function summary(string $name, string $help, array $labelNames = [], int $maxAgeSeconds = self::DEFAULT_MAX_AGE_SECONDS, ?array $quantiles = null): Family
    {
        if ($maxAgeSeconds <= 0) {
            throw Errors::invalid("maxAgeSeconds must be positive, got {$maxAgeSeconds}");
        }
        return $this->family(C::PROMSHM_METRIC_TYPE_SUMMARY, $name, $help, $labelNames, [$maxAgeSeconds, array_values($quantiles ?? self::DEFAULT_QUANTILES)]);
    }

    /**
     * @param string[] $labelNames
     * @param mixed[]  $shape      the type's own parameters
     */
    private function family(int $type, string $name, string $help, array $labelNames, array $shape): Family
    {
        $labelNames = array_values($labelNames);
        $key = $type . "\0" . $name . "\0" . serialize([$labelNames, $shape]);
        if (isset($this->families[$key])) {
            return $this->families[$key];
        }
        $globalSet = $type === C::PROMSHM_METRIC_TYPE_GAUGE && \in_array($shape[0], [C::PROMSHM_GAUGE_MODE_SUM, C::PROMSHM_GAUGE_MODE_LIVESUM], true);
        $keep = $this->persistent && $this->keptPath() !== null;
        $keepKey = $key . "\0" . ($this->eager ? 'eager' : 'default') . "\0" . $help;
        if ($keep) {
            $kept = ProcessCache::family($this->ffi, $this->keptPath(), $keepKey);
            if ($kept !== null) {
                return $this->families[$key] = new Family($this->ffi, $kept, $type, $name, $labelNames, $globalSet, false);
            }
        }
        $s = new CStrings($this->ffi);
        $opts = $this->ffi->new('promshm_metric_opts');
        $opts->size = FFI::sizeof($opts);
        $opts->update_mode = $this->eager ? C::PROMSHM_UPDATE_MODE_EAGER : C::PROMSHM_UPDATE_MODE_DEFAULT;
        $opts->name = $s->str($name, 'metric name');
        $opts->help = $s->str($help, 'help');
        $names = $s->array($labelNames, 'label names');
        if ($names !== null) {
            $opts->label_names = $names;
        }
        $opts->n_label_names = \count($labelNames);
        $out = $this->ffi->new('const promshm_family *');
        $reg = $this->registry();
        $rc = match ($type) {
            C::PROMSHM_METRIC_TYPE_COUNTER => $this->ffi->promshm_registry_counter($reg, FFI::addr($opts), FFI::addr($out)),
            C::PROMSHM_METRIC_TYPE_GAUGE => $this->ffi->promshm_registry_gauge($reg, FFI::addr($opts), $shape[0], FFI::addr($out)),
            C::PROMSHM_METRIC_TYPE_HISTOGRAM => $this->ffi->promshm_registry_histogram($reg, FFI::addr($opts), $s->doubles($shape, 'buckets'), \count($shape), FFI::addr($out)),
            C::PROMSHM_METRIC_TYPE_SUMMARY => $this->ffi->promshm_registry_summary($reg, FFI::addr($opts), $s->doubles($shape[1], 'quantiles'), \count($shape[1]), $shape[0] * 1000, 0, FFI::addr($out)),
        };
        Errors::check($rc, $name);
        if ($keep) {
            ProcessCache::putFamily($this->ffi, $this->keptPath(), $keepKey, $out);
        }
        return $this->families[$key] = new Family($this->ffi, $out, $type, $name, $labelNames, $globalSet, !$keep);
    }

    // --- PromPHP's Adapter ---------------------------------------------------

    /** @param mixed[] $data */
    public function updateCounter(array $data): void
    {
        $this->counter($data['name'], $data['help'], $data['labelNames'] ?? [])
            ->counterAdd($data['labelValues'] ?? [], (float) $data['value']);
    }

    /** @param mixed[] $data */
    public function updateGauge(array $data): void
    {
        $family = $this->gauge($data['name'], $data['help'], $data['labelNames'] ?? []);
        if (($data['command'] ?? null) === Adapter::COMMAND_SET) {
            $family->gaugeSet($data['labelValues'] ?? [], (float) $data['value']);
        } else {
            $family->gaugeAdd($data['labelValues'] ?? [], (float) $data['value']);
        }
    }

    /** @param mixed[] $data */
    public function updateHistogram(array $data): void
    {
        $this->histogram($data['name'], $data['help'], $data['labelNames'] ?? [], $data['buckets'] ?? null)
            ->observe($data['labelValues'] ?? [], (float) $data['value']);
    }

    /** @param mixed[] $data */
    public function updateSummary(array $data): void
    {
        $this->summary($data['name'], $data['help'], $data['labelNames'] ?? [], (int) ($data['maxAgeSeconds'] ?? self::DEFAULT_MAX_AGE_SECONDS), $data['quantiles'] ?? null)
            ->observe($data['labelValues'] ?? [], (float) $data['value']);
    }

    /**
     * Every family of the area (every process's updates, this process's
     * flushed first), each carrying the exact text the library rendered for
     * it. `$sortMetrics` orders the families by name, as PromPHP does.
     *
     * @return MetricFamilySamples[]
     */
    public function collect(bool $sortMetrics = true): array
    {
        $families = Exposition::parse($this->render());
        if ($sortMetrics) {
            usort($families, static fn (array $a, array $b): int => strcmp($a['name'], $b['name']));
        }
        return array_map(static fn (array $f): MetricFamilySamples => new MetricFamilySamples($f), $families);
    }

    /** Remove every series of the families this Storage registered (for every process). */
    public function wipeStorage(): void
    {
        foreach ($this->families as $family) {
            $family->clear();
        }
    }

    // --- promshm's own ---------------------------------------------------------

    /** The whole area in the Prometheus text format, exactly as the library renders it. */
    public function render(int $format = C::PROMSHM_FORMAT_PROMETHEUS): string
    {
        return $this->area()->render($format);
    }

    /** Push this process's buffered updates into the area now. */
    public static function flush(): void
    {
        if (\extension_loaded('ffi')) {
            Errors::check(Library::ffi()->promshm_flush(), 'flush');
        }
    }

    /**
     * Release every handle, the families' included (buffered updates are
     * flushed by the library); a Family of this Storage may not be used
     * after it.
     */
    public function close(): void
    {
        foreach ($this->families as $family) {
            $family->close();
        }
        $this->drop();
    }

    /** Drop this Storage's own handles; families still referenced stay usable (they hold the area). */
    private function drop(): void
    {
        $this->families = [];
        if ($this->registry !== null && $this->ownsRegistry) {
            $this->ffi->promshm_registry_free($this->registry);
        }
        $this->registry = null;
        if ($this->ownsArea) {
            $this->area?->close();
        }
        $this->area = null;
        unset(self::$live[spl_object_id($this)]);
    }

    public function __destruct()
    {
        $this->drop();
    }

    private static function registerShutdown(): void
    {
        if (!self::$shutdownRegistered) {
            self::$shutdownRegistered = true;
            register_shutdown_function([self::class, 'onShutdown'], 1);
        }
    }

    /**
     * The request-end flush. Pass 1 queues pass 2 behind the shutdown
     * functions registered after it, so their updates are flushed too.
     * After a fatal error PHP calls no destructor: pass 2 then releases
     * every handle itself, so a php-fpm child does not keep one mapping per
     * failed request.
     *
     * @internal
     */
    public static function onShutdown(int $pass): void
    {
        if ($pass === 1) {
            register_shutdown_function([self::class, 'onShutdown'], 2);
        }
        try {
            self::flush();
        } catch (\Throwable $e) {
            error_log('promshm: flush at request end failed: ' . $e->getMessage());
        }
        if ($pass === 2) {
            self::$shutdownRegistered = false;
            $err = error_get_last();
            $fatal = E_ERROR | E_CORE_ERROR | E_COMPILE_ERROR | E_PARSE | E_USER_ERROR | E_RECOVERABLE_ERROR;
            if ($err !== null && ($err['type'] & $fatal) !== 0) {
                foreach (self::$live as $ref) {
                    $ref->get()?->close();
                }
                self::$live = [];
            }
        }
    }
}
