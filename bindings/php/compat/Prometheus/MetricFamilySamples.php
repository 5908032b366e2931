<?php

declare(strict_types=1);

namespace Prometheus;

/**
 * One metric family and its samples, as PromPHP shapes it. Families that
 * \Promshm\Storage::collect() returns also carry the exact text the
 * promshm library rendered for them (getPromshmText()), which
 * RenderTextFormat outputs unchanged.
 */
class MetricFamilySamples
{
    private string $name;
    private string $type;
    private string $help;
    /** @var string[] */
    private array $labelNames;
    /** @var Sample[] */
    private array $samples = [];
    private ?string $promshmText;

    /** @param mixed[] $data name, type, help, labelNames, samples; optional promshmText */
    public function __construct(array $data)
    {
        $this->name = $data['name'];
        $this->type = $data['type'];
        $this->help = $data['help'];
        $this->labelNames = (array) $data['labelNames'];
        foreach ($data['samples'] as $sample) {
            $this->samples[] = new Sample($sample);
        }
        $this->promshmText = $data['promshmText'] ?? null;
    }

    public function getName(): string
    {
        return $this->name;
    }

    public function getType(): string
    {
        return $this->type;
    }

    public function getHelp(): string
    {
        return $this->help;
    }

    /** @return Sample[] */
    public function getSamples(): array
    {
        return $this->samples;
    }

    /** @return string[] */
    public function getLabelNames(): array
    {
        return $this->labelNames;
    }

    public function hasLabelNames(): bool
    {
        return $this->labelNames !== [];
    }

    /** The exposition promshm rendered for this family, or null (another storage). */
    public function getPromshmText(): ?string
    {
        return $this->promshmText;
    }
}
