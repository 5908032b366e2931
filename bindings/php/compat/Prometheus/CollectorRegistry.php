<?php

declare(strict_types=1);

namespace Prometheus;

use Prometheus\Exception\MetricNotFoundException;
use Prometheus\Exception\MetricsRegistrationException;
use Prometheus\Storage\Adapter;
use Promshm\Storage;

/**
 * PromPHP's CollectorRegistry (declared by promshm when PromPHP is absent):
 * `new CollectorRegistry(new \Promshm\Storage())`. Which collectors this
 * object registered is per object (per request under php-fpm); the metrics
 * themselves live in the shared area.
 */
class CollectorRegistry implements RegistryInterface
{
    private static ?CollectorRegistry $defaultRegistry = null;

    private Adapter $storageAdapter;
    /** @var array<string, Gauge> */
    private array $gauges = [];
    /** @var array<string, Counter> */
    private array $counters = [];
    /** @var array<string, Histogram> */
    private array $histograms = [];
    /** @var array<string, Summary> */
    private array $summaries = [];

    /**
     * `$registerDefaultMetrics`: PromPHP's php_info{version} gauge, set to 1.
     */
    public function __construct(Adapter $storageAdapter, bool $registerDefaultMetrics = true)
    {
        $this->storageAdapter = $storageAdapter;
        if ($registerDefaultMetrics) {
            if ($storageAdapter instanceof Storage) {
                $storageAdapter->gauge('php_info', 'Information about the PHP environment.', ['version'], 'max')->gaugeSet([PHP_VERSION], 1.0);
            } else {
                $this->getOrRegisterGauge('', 'php_info', 'Information about the PHP environment.', ['version'])->set(1, [PHP_VERSION]);
            }
        }
    }

    /** A registry on a \Promshm\Storage with the zero-configuration area. */
    public static function getDefault(): CollectorRegistry
    {
        return self::$defaultRegistry ??= new self(new Storage());
    }

    public function wipeStorage(): void
    {
        $this->storageAdapter->wipeStorage();
    }

    /** @return MetricFamilySamples[] */
    public function getMetricFamilySamples(bool $sortMetrics = true): array
    {
        return $this->storageAdapter->collect($sortMetrics);
    }

    /** @param string[] $labels */
    public function registerGauge(string $namespace, string $name, string $help, array $labels = []): Gauge
    {
        $key = self::key($namespace, $name);
        if (isset($this->gauges[$key])) {
            throw new MetricsRegistrationException("Metric already registered: {$key}");
        }
        return $this->gauges[$key] = new Gauge($this->storageAdapter, $namespace, $name, $help, $labels);
    }

    public function getGauge(string $namespace, string $name): Gauge
    {
        return $this->gauges[self::key($namespace, $name)] ?? throw new MetricNotFoundException('Metric not found:' . self::key($namespace, $name));
    }

    /** @param string[] $labels */
    public function getOrRegisterGauge(string $namespace, string $name, string $help, array $labels = []): Gauge
    {
        return $this->gauges[self::key($namespace, $name)] ?? $this->registerGauge($namespace, $name, $help, $labels);
    }

    /** @param string[] $labels */
    public function registerCounter(string $namespace, string $name, string $help, array $labels = []): Counter
    {
        $key = self::key($namespace, $name);
        if (isset($this->counters[$key])) {
            throw new MetricsRegistrationException("Metric already registered: {$key}");
        }
        return $this->counters[$key] = new Counter($this->storageAdapter, $namespace, $name, $help, $labels);
    }

    public function getCounter(string $namespace, string $name): Counter
    {
        return $this->counters[self::key($namespace, $name)] ?? throw new MetricNotFoundException('Metric not found:' . self::key($namespace, $name));
    }

    /** @param string[] $labels */
    public function getOrRegisterCounter(string $namespace, string $name, string $help, array $labels = []): Counter
    {
        return $this->counters[self::key($namespace, $name)] ?? $this->registerCounter($namespace, $name, $help, $labels);
    }

    /**
     * @param string[]     $labels
     * @param float[]|null $buckets
     */
    public function registerHistogram(string $namespace, string $name, string $help, array $labels = [], ?array $buckets = null): Histogram
    {
        $key = self::key($namespace, $name);
        if (isset($this->histograms[$key])) {
            throw new MetricsRegistrationException("Metric already registered: {$key}");
        }
        return $this->histograms[$key] = new Histogram($this->storageAdapter, $namespace, $name, $help, $labels, $buckets);
    }

    public function getHistogram(string $namespace, string $name): Histogram
    {
        return $this->histograms[self::key($namespace, $name)] ?? throw new MetricNotFoundException('Metric not found:' . self::key($namespace, $name));
    }

    /**
     * @param string[]     $labels
     * @param float[]|null $buckets
     */
    public function getOrRegisterHistogram(string $namespace, string $name, string $help, array $labels = [], ?array $buckets = null): Histogram
    {
        return $this->histograms[self::key($namespace, $name)] ?? $this->registerHistogram($namespace, $name, $help, $labels, $buckets);
    }

    /**
     * @param string[]     $labels
     * @param float[]|null $quantiles
     */
    public function registerSummary(string $namespace, string $name, string $help, array $labels = [], int $maxAgeSeconds = 600, ?array $quantiles = null): Summary
    {
        $key = self::key($namespace, $name);
        if (isset($this->summaries[$key])) {
            throw new MetricsRegistrationException("Metric already registered: {$key}");
        }
        return $this->summaries[$key] = new Summary($this->storageAdapter, $namespace, $name, $help, $labels, $maxAgeSeconds, $quantiles);
    }

    public function getSummary(string $namespace, string $name): Summary
    {
        return $this->summaries[self::key($namespace, $name)] ?? throw new MetricNotFoundException('Metric not found:' . self::key($namespace, $name));
    }

    /**
     * @param string[]     $labels
     * @param float[]|null $quantiles
     */
    public function getOrRegisterSummary(string $namespace, string $name, string $help, array $labels = [], int $maxAgeSeconds = 600, ?array $quantiles = null): Summary
    {
        return $this->summaries[self::key($namespace, $name)] ?? $this->registerSummary($namespace, $name, $help, $labels, $maxAgeSeconds, $quantiles);
    }

    private static function key(string $namespace, string $name): string
    {
        return ($namespace !== '' ? $namespace . '_' : '') . $name;
    }
}
