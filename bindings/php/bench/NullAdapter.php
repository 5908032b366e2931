<?php

// The benchmark's "nothing" store: PromPHP's API with every update dropped,
// to separate the cost of the API (registry, label checks) from the store's.

declare(strict_types=1);

namespace Promshm\Bench;

use Prometheus\Storage\Adapter;

final class NullAdapter implements Adapter
{
    public function collect(bool $sortMetrics = true): array
    {
        return [];
    }

    public function updateSummary(array $data): void
    {
    }

    public function updateHistogram(array $data): void
    {
    }

    public function updateGauge(array $data): void
    {
    }

    public function updateCounter(array $data): void
    {
    }

    public function wipeStorage(): void
    {
    }
}
