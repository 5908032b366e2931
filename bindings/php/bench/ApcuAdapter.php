<?php

// The benchmark's APCu store: what PromPHP's APC adapter does, in brief.
// Each update is one `apcu_inc` of its value key (a compare-and-swap loop
// for float sums, as APCu has no float add) plus the `apcu_add` of the
// metric's meta key PromPHP also does on every update; a scrape walks every
// key with APCUIterator and fetches every value. Not for production use.

declare(strict_types=1);

namespace Promshm\Bench;

use APCUIterator;
use Prometheus\MetricFamilySamples;
use Prometheus\Storage\Adapter;

final class ApcuAdapter implements Adapter
{
    private const PREFIX = 'prom';

    public function updateCounter(array $data): void
    {
        $this->meta($data);
        $key = $this->valueKey($data, '');
        if (floor((float) $data['value']) !== (float) $data['value']) {
            throw new \LogicException('the benchmark counts whole numbers only');
        }
        $this->incInt($key, (int) $data['value']);
    }

    public function updateGauge(array $data): void
    {
        $this->meta($data);
        $key = $this->valueKey($data, '');
        if ($data['command'] === Adapter::COMMAND_SET) {
            apcu_store($key, self::bits((float) $data['value']));
        } else {
            $this->addFloat($key, (float) $data['value']);
        }
    }

    public function updateHistogram(array $data): void
    {
        $this->meta($data);
        $value = (float) $data['value'];
        $this->addFloat($this->valueKey($data, 'sum'), $value);
        $le = '+Inf';
        foreach ($data['buckets'] as $bound) {
            if ($value <= $bound) {
                $le = (string) $bound;
                break;
            }
        }
        $this->incInt($this->valueKey($data, $le), 1);
    }

    public function updateSummary(array $data): void
    {
        throw new \LogicException('summaries are not part of the benchmark');
    }

    public function wipeStorage(): void
    {
        apcu_delete(new APCUIterator('/^' . self::PREFIX . ':/'));
    }

    public function collect(bool $sortMetrics = true): array
    {
        $metas = [];
        foreach (new APCUIterator('/^' . self::PREFIX . ':meta:/') as $entry) {
            $metas[substr($entry['key'], strlen(self::PREFIX . ':meta:'))] = json_decode($entry['value'], true);
        }
        $values = [];
        foreach (new APCUIterator('/^' . self::PREFIX . ':value:/') as $entry) {
            [, , $name, $labels, $suffix] = explode(':', $entry['key'], 5);
            $values[$name][$labels][$suffix] = $entry['value'];
        }
        $families = [];
        foreach ($metas as $name => $meta) {
            $samples = [];
            $series = $values[$name] ?? [];
            if ($sortMetrics) {
                ksort($series);
            }
            foreach ($series as $encoded => $fields) {
                $labelValues = json_decode(base64_decode($encoded), true);
                if ($meta['type'] !== 'histogram') {
                    $value = $meta['type'] === 'gauge' ? self::float($fields['']) : $fields[''];
                    $samples[] = ['name' => $name, 'labelNames' => [], 'labelValues' => $labelValues, 'value' => $value];
                    continue;
                }
                $cumulative = 0;
                foreach ([...$meta['buckets'], '+Inf'] as $bound) {
                    $cumulative += $fields[(string) $bound] ?? 0;
                    $samples[] = ['name' => $name . '_bucket', 'labelNames' => ['le'],
                        'labelValues' => [...$labelValues, (string) $bound], 'value' => $cumulative];
                }
                $samples[] = ['name' => $name . '_count', 'labelNames' => [], 'labelValues' => $labelValues, 'value' => $cumulative];
                $samples[] = ['name' => $name . '_sum', 'labelNames' => [], 'labelValues' => $labelValues, 'value' => self::float($fields['sum'] ?? 0)];
            }
            $families[] = new MetricFamilySamples($meta + ['samples' => $samples]);
        }
        if ($sortMetrics) {
            usort($families, static fn ($a, $b) => strcmp($a->getName(), $b->getName()));
        }
        return $families;
    }

    private function meta(array $data): void
    {
        apcu_add(self::PREFIX . ':meta:' . $data['name'], json_encode([
            'name' => $data['name'], 'help' => $data['help'], 'type' => $data['type'],
            'labelNames' => $data['labelNames'], 'buckets' => $data['buckets'] ?? [],
        ]));
    }

    private function valueKey(array $data, string $suffix): string
    {
        return self::PREFIX . ':value:' . $data['name'] . ':'
            . base64_encode(json_encode($data['labelValues'])) . ':' . $suffix;
    }

    private function incInt(string $key, int $by): void
    {
        apcu_inc($key, $by, $ok);
        if (!$ok) {
            apcu_add($key, 0);
            apcu_inc($key, $by);
        }
    }

    /** Float adds as PromPHP does them: the double's bits in an integer, swapped in by apcu_cas. */
    private function addFloat(string $key, float $by): void
    {
        apcu_add($key, self::bits(0.0));
        do {
            $old = apcu_fetch($key);
        } while (!apcu_cas($key, $old, self::bits(self::float($old) + $by)));
    }

    private static function bits(float $value): int
    {
        return unpack('q', pack('d', $value))[1];
    }

    private static function float(int $bits): float
    {
        return unpack('d', pack('q', $bits))[1];
    }
}

