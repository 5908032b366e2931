<?php

declare(strict_types=1);

namespace Prometheus\Storage;

use Prometheus\MetricFamilySamples;

/**
 * PromPHP's storage contract (declared by promshm when PromPHP is absent).
 * \Promshm\Storage implements it.
 */
interface Adapter
{
    public const COMMAND_INCREMENT_INTEGER = 1;
    public const COMMAND_INCREMENT_FLOAT = 2;
    public const COMMAND_SET = 3;

    /** @return MetricFamilySamples[] */
    public function collect(bool $sortMetrics = true): array;

    /** @param mixed[] $data */
    public function updateSummary(array $data): void;

    /** @param mixed[] $data */
    public function updateHistogram(array $data): void;

    /** @param mixed[] $data */
    public function updateGauge(array $data): void;

    /** @param mixed[] $data */
    public function updateCounter(array $data): void;

    /** Remove every stored metric. */
    public function wipeStorage(): void;
}
