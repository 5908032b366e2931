<?php

declare(strict_types=1);

namespace Prometheus;

/** PromPHP's registry contract (declared by promshm when PromPHP is absent). */
interface RegistryInterface
{
    public function wipeStorage(): void;

    /** @return MetricFamilySamples[] */
    public function getMetricFamilySamples(bool $sortMetrics = true): array;

    /** @param string[] $labels */
    public function registerGauge(string $namespace, string $name, string $help, array $labels = []): Gauge;

    public function getGauge(string $namespace, string $name): Gauge;

    /** @param string[] $labels */
    public function getOrRegisterGauge(string $namespace, string $name, string $help, array $labels = []): Gauge;

    /** @param string[] $labels */
    public function registerCounter(string $namespace, string $name, string $help, array $labels = []): Counter;

    public function getCounter(string $namespace, string $name): Counter;

    /** @param string[] $labels */
    public function getOrRegisterCounter(string $namespace, string $name, string $help, array $labels = []): Counter;

    /**
     * @param string[]     $labels
     * @param float[]|null $buckets
     */
    public function registerHistogram(string $namespace, string $name, string $help, array $labels = [], ?array $buckets = null): Histogram;

    public function getHistogram(string $namespace, string $name): Histogram;

    /**
     * @param string[]     $labels
     * @param float[]|null $buckets
     */
    public function getOrRegisterHistogram(string $namespace, string $name, string $help, array $labels = [], ?array $buckets = null): Histogram;

    /**
     * @param string[]     $labels
     * @param float[]|null $quantiles
     */
    public function registerSummary(string $namespace, string $name, string $help, array $labels = [], int $maxAgeSeconds = 600, ?array $quantiles = null): Summary;

    public function getSummary(string $namespace, string $name): Summary;

    /**
     * @param string[]     $labels
     * @param float[]|null $quantiles
     */
    public function getOrRegisterSummary(string $namespace, string $name, string $help, array $labels = [], int $maxAgeSeconds = 600, ?array $quantiles = null): Summary;
}
