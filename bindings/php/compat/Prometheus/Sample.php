<?php

declare(strict_types=1);

namespace Prometheus;

/** One sample of a family, as PromPHP shapes it. */
class Sample
{
    private string $name;
    /** @var string[] */
    private array $labelNames;
    /** @var string[] */
    private array $labelValues;
    private int|float $value;

    /** @param mixed[] $data name, labelNames, labelValues, value */
    public function __construct(array $data)
    {
        $this->name = $data['name'];
        $this->labelNames = (array) $data['labelNames'];
        $this->labelValues = (array) $data['labelValues'];
        $this->value = $data['value'];
    }

    public function getName(): string
    {
        return $this->name;
    }

    /** @return string[] */
    public function getLabelNames(): array
    {
        return $this->labelNames;
    }

    /** @return string[] */
    public function getLabelValues(): array
    {
        return $this->labelValues;
    }

    public function getValue(): string
    {
        if (\is_float($this->value) && is_infinite($this->value)) {
            return $this->value > 0 ? '+Inf' : '-Inf';
        }
        if (\is_float($this->value) && is_nan($this->value)) {
            return 'NaN';
        }
        return (string) $this->value;
    }

    public function hasLabelNames(): bool
    {
        return $this->labelNames !== [];
    }
}
