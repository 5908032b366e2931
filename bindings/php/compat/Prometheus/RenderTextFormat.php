<?php

declare(strict_types=1);

namespace Prometheus;

/**
 * The Prometheus text format 0.0.4. A family collected from \Promshm\Storage
 * is output exactly as the promshm library rendered it (promtool-clean);
 * any other family is rendered the way PromPHP does.
 */
class RenderTextFormat
{
    public const MIME_TYPE = 'text/plain; version=0.0.4';

    /** @param MetricFamilySamples[] $metrics */
    public function render(array $metrics, bool $silent = false): string
    {
        $out = '';
        foreach ($metrics as $family) {
            $text = method_exists($family, 'getPromshmText') ? $family->getPromshmText() : null;
            $out .= $text ?? $this->renderFamily($family);
        }
        return $out;
    }

    private function renderFamily(MetricFamilySamples $family): string
    {
        $lines = [
            '# HELP ' . $family->getName() . ' ' . str_replace(['\\', "\n"], ['\\\\', '\\n'], $family->getHelp()),
            '# TYPE ' . $family->getName() . ' ' . $family->getType(),
        ];
        foreach ($family->getSamples() as $sample) {
            $names = array_merge($family->getLabelNames(), $sample->getLabelNames());
            $values = $sample->getLabelValues();
            $pairs = [];
            foreach ($names as $i => $name) {
                $value = str_replace(['\\', "\n", '"'], ['\\\\', '\\n', '\\"'], (string) ($values[$i] ?? ''));
                $pairs[] = $name . '="' . $value . '"';
            }
            $lines[] = $sample->getName() . ($pairs === [] ? '' : '{' . implode(',', $pairs) . '}') . ' ' . $sample->getValue();
        }
        return implode("\n", $lines) . "\n";
    }
}
