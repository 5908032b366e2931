<?php

declare(strict_types=1);

namespace Prometheus;

use Prometheus\Storage\Adapter;
use Promshm\Storage;

/** PromPHP's histogram (declared by promshm when PromPHP is absent). */
class Histogram extends Collector
{
    public const TYPE = 'histogram';

    /** @var float[] */
    private array $buckets;

    /**
     * @param string[]     $labels
     * @param float[]|null $buckets null: getDefaultBuckets()
     */
    public function __construct(Adapter $adapter, string $namespace, string $name, string $help, array $labels = [], ?array $buckets = null)
    {
        parent::__construct($adapter, $namespace, $name, $help, $labels);
        $buckets = array_values($buckets ?? self::getDefaultBuckets());
        if ($buckets === []) {
            throw new \Promshm\Exception\InvalidArgumentException('invalid buckets', 108, "Histogram {$this->name} must have at least one bucket");
        }
        $this->buckets = $buckets;
        if ($adapter instanceof Storage) {
            $this->family = $adapter->histogram($this->name, $help, $this->labels, $buckets);
            return;
        }
        for ($i = 0; $i < \count($buckets) - 1; $i++) {
            if ($buckets[$i] >= $buckets[$i + 1]) {
                throw new \InvalidArgumentException('Histogram buckets must be in increasing order');
            }
        }
        if (\in_array('le', $this->labels, true)) {
            throw new \InvalidArgumentException("Histogram cannot have a label named 'le'");
        }
    }

    /** PromPHP's default buckets. @return float[] */
    public static function getDefaultBuckets(): array
    {
        return Storage::DEFAULT_BUCKETS;
    }

    /** `$numberOfBuckets` bounds from `$start`, each `$growthFactor` times the last. @return float[] */
    public static function exponentialBuckets(float $start, float $growthFactor, int $numberOfBuckets): array
    {
        if ($numberOfBuckets < 1 || $start <= 0 || $growthFactor <= 1) {
            throw new \InvalidArgumentException('exponentialBuckets needs start > 0, growthFactor > 1 and at least one bucket');
        }
        $out = [];
        for ($i = 0, $b = $start; $i < $numberOfBuckets; $i++, $b *= $growthFactor) {
            $out[] = $b;
        }
        return $out;
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
        $this->storageAdapter->updateHistogram([
            'value' => $value,
            'name' => $this->getName(),
            'help' => $this->getHelp(),
            'type' => $this->getType(),
            'labelNames' => $this->getLabelNames(),
            'labelValues' => $labels,
            'buckets' => $this->buckets,
        ]);
    }
}
