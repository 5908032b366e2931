<?php

declare(strict_types=1);

namespace Prometheus;

use Prometheus\Storage\Adapter;
use Promshm\Family;
use Promshm\Storage;

/**
 * PromPHP's base of the four metric types (declared by promshm when PromPHP
 * is absent). On a \Promshm\Storage the family is registered in the shared
 * area when the collector is made (so bad names fail here), and updates go
 * straight to it; on another Adapter they go through the Adapter contract.
 */
abstract class Collector
{
    public const RE_METRIC_LABEL_NAME = '/^[a-zA-Z_:][a-zA-Z0-9_:]*$/';

    protected Adapter $storageAdapter;
    protected string $name;
    protected string $help;
    /** @var string[] */
    protected array $labels;
    /** The promshm family, when the adapter is a \Promshm\Storage. */
    protected ?Family $family = null;

    /** @param string[] $labels */
    public function __construct(Adapter $storageAdapter, string $namespace, string $name, string $help, array $labels = [])
    {
        $this->storageAdapter = $storageAdapter;
        $metricName = ($namespace !== '' ? $namespace . '_' : '') . $name;
        $this->name = $metricName;
        $this->help = $help;
        $this->labels = array_values($labels);
        if (!$storageAdapter instanceof Storage) {
            if (!preg_match(self::RE_METRIC_LABEL_NAME, $metricName)) {
                throw new \InvalidArgumentException("Invalid metric name: '{$metricName}'");
            }
            foreach ($this->labels as $label) {
                if (!\is_string($label) || !preg_match('/^[a-zA-Z_][a-zA-Z0-9_]*$/', $label) || str_starts_with($label, '__')) {
                    throw new \InvalidArgumentException("Invalid label name: '{$label}'");
                }
            }
        }
    }

    /** The type as the text format names it. */
    abstract public function getType(): string;

    public function getName(): string
    {
        return $this->name;
    }

    /** @return string[] */
    public function getLabelNames(): array
    {
        return $this->labels;
    }

    public function getHelp(): string
    {
        return $this->help;
    }

    public function getKey(): string
    {
        return sha1($this->getName() . serialize($this->getLabelNames()));
    }

    /** @param mixed[] $labels */
    protected function assertLabelsAreDefinedCorrectly(array $labels): void
    {
        if (\count($labels) !== \count($this->labels)) {
            throw new \InvalidArgumentException(sprintf('Labels are not defined correctly: %s', print_r($labels, true)));
        }
    }
}
