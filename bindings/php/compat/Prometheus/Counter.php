<?php

declare(strict_types=1);

namespace Prometheus;

use Prometheus\Storage\Adapter;
use Promshm\Storage;

/** PromPHP's counter (declared by promshm when PromPHP is absent). */
class Counter extends Collector
{
    public const TYPE = 'counter';

    /** @param string[] $labels */
    public function __construct(Adapter $adapter, string $namespace, string $name, string $help, array $labels = [])
    {
        parent::__construct($adapter, $namespace, $name, $help, $labels);
        if ($adapter instanceof Storage) {
            $this->family = $adapter->counter($this->name, $help, $this->labels);
        }
    }

    public function getType(): string
    {
        return self::TYPE;
    }

    /** @param mixed[] $labels */
    public function inc(array $labels = []): void
    {
        $this->incBy(1, $labels);
    }

    /** @param mixed[] $labels */
    public function incBy(int|float $count, array $labels = []): void
    {
        if ($this->family !== null) {
            $this->family->counterAdd($labels, (float) $count);
            return;
        }
        $this->assertLabelsAreDefinedCorrectly($labels);
        $this->storageAdapter->updateCounter([
            'name' => $this->getName(),
            'help' => $this->getHelp(),
            'type' => $this->getType(),
            'labelNames' => $this->getLabelNames(),
            'labelValues' => $labels,
            'value' => $count,
            'command' => \is_float($count) ? Adapter::COMMAND_INCREMENT_FLOAT : Adapter::COMMAND_INCREMENT_INTEGER,
        ]);
    }
}
