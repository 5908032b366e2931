<?php

declare(strict_types=1);

namespace Prometheus;

use Prometheus\Storage\Adapter;
use Promshm\Storage;

/**
 * PromPHP's summary (declared by promshm when PromPHP is absent): quantiles
 * over the last maxAgeSeconds (default 600), computed across every process
 * of the area within 1 % relative error.
 */
class Summary extends Collector
{
    public const TYPE = 'summary';

    private int $maxAgeSeconds;
    /** @var float[] */
    private array $quantiles;

    /**
     * @param string[]     $labels
     * @param float[]|null $quantiles null: getDefaultQuantiles()
     */
    public function __construct(Adapter $adapter, string $namespace, string $name, string $help, array $labels = [], int $maxAgeSeconds = 600, ?array $quantiles = null)
    {
        parent::__construct($adapter, $namespace, $name, $help, $labels);
        $this->maxAgeSeconds = $maxAgeSeconds;
        $this->quantiles = array_values($quantiles ?? self::getDefaultQuantiles());
        if ($adapter instanceof Storage) {
            $this->family = $adapter->summary($this->name, $help, $this->labels, $maxAgeSeconds, $this->quantiles);
        }
    }

    /** PromPHP's default quantiles. @return float[] */
    public static function getDefaultQuantiles(): array
    {
        return Storage::DEFAULT_QUANTILES;
    }

    public function getType(): string
    {
        return self::TYPE;
    }

    /** @param mixed[] $labels */
    public function observe(float $value, array $labels = []): void
    {
        if ($this->family !== null) {
            $this->family->observe($labels, $value);
            return;
        }
        $this->assertLabelsAreDefinedCorrectly($labels);
        $this->storageAdapter->updateSummary([
            'value' => $value,
            'name' => $this->getName(),
            'help' => $this->getHelp(),
            'type' => $this->getType(),
            'labelNames' => $this->getLabelNames(),
            'labelValues' => $labels,
            'maxAgeSeconds' => $this->maxAgeSeconds,
            'quantiles' => $this->quantiles,
        ]);
    }
}
