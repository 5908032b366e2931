<?php

declare(strict_types=1);

namespace Prometheus;

use Prometheus\Storage\Adapter;
use Promshm\Storage;

/** PromPHP's gauge (declared by promshm when PromPHP is absent). */
class Gauge extends Collector
{
    public const TYPE = 'gauge';

    /** @param string[] $labels */
    public function __construct(Adapter $adapter, string $namespace, string $name, string $help, array $labels = [])
    {
        parent::__construct($adapter, $namespace, $name, $help, $labels);
        if ($adapter instanceof Storage) {
            $this->family = $adapter->gauge($this->name, $help, $this->labels);
        }
    }

    public function getType(): string
    {
        return self::TYPE;
    }

    /** @param mixed[] $labels */
    public function set(float $value, array $labels = []): void
    {
        if ($this->family !== null) {
            $this->family->gaugeSet($labels, $value);
            return;
        }
        $this->update($value, $labels, Adapter::COMMAND_SET);
    }

    /** @param mixed[] $labels */
    public function inc(array $labels = []): void
    {
        $this->incBy(1, $labels);
    }

    /** @param mixed[] $labels */
    public function incBy(int|float $value, array $labels = []): void
    {
        if ($this->family !== null) {
            $this->family->gaugeAdd($labels, (float) $value);
            return;
        }
        $this->update($value, $labels, Adapter::COMMAND_INCREMENT_FLOAT);
    }

    /** @param mixed[] $labels */
    public function dec(array $labels = []): void
    {
        $this->decBy(1, $labels);
    }

    /** @param mixed[] $labels */
    public function decBy(int|float $value, array $labels = []): void
    {
        $this->incBy(-$value, $labels);
    }

    /** @param mixed[] $labels */
    private function update(int|float $value, array $labels, int $command): void
    {
        $this->assertLabelsAreDefinedCorrectly($labels);
        $this->storageAdapter->updateGauge([
            'name' => $this->getName(),
            'help' => $this->getHelp(),
            'type' => $this->getType(),
            'labelNames' => $this->getLabelNames(),
            'labelValues' => $labels,
            'value' => $value,
            'command' => $command,
        ]);
    }
}
