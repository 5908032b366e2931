<?php

declare(strict_types=1);

namespace Promshm;

/**
 * Splits the Prometheus text the library renders into families, each with
 * its exact text and its samples in PromPHP's shape.
 */
final class Exposition
{
    /**
     * @return list<array{name: string, type: string, help: string, labelNames: string[], samples: list<array{name: string, labelNames: string[], labelValues: string[], value: int|float}>, promshmText: string}>
     */
    public static function parse(string $text): array
    {
        $families = [];
        $cur = null;
        foreach (explode("\n", $text) as $line) {
            if ($line === '') {
                continue;
            }
            if (preg_match('/^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (.*))?$/', $line, $m)) {
                if ($cur === null || $cur['name'] !== $m[2] || ($m[1] === 'HELP' && $cur['samples'] !== [])) {
                    if ($cur !== null) {
                        $families[] = $cur;
                    }
                    $cur = ['name' => $m[2], 'type' => 'untyped', 'help' => '', 'labelNames' => [], 'samples' => [], 'promshmText' => ''];
                }
                if ($m[1] === 'HELP') {
                    $cur['help'] = self::unescape($m[3] ?? '', false);
                } else {
                    $cur['type'] = $m[3] ?? 'untyped';
                }
                $cur['promshmText'] .= $line . "\n";
                continue;
            }
            if ($line[0] === '#') {
                if ($cur !== null) {
                    $cur['promshmText'] .= $line . "\n";
                }
                continue;
            }
            $sample = self::sample($line);
            if ($cur === null) {
                $cur = ['name' => $sample['name'], 'type' => 'untyped', 'help' => '', 'labelNames' => [], 'samples' => [], 'promshmText' => ''];
            }
            $cur['samples'][] = $sample;
            $cur['promshmText'] .= $line . "\n";
        }
        if ($cur !== null) {
            $families[] = $cur;
        }
        return $families;
    }

    /** @return array{name: string, labelNames: string[], labelValues: string[], value: int|float} */
    private static function sample(string $line): array
    {
        $names = [];
        $values = [];
        $brace = strpos($line, '{');
        $space = strpos($line, ' ');
        if ($brace !== false && ($space === false || $brace < $space)) {
            $name = substr($line, 0, $brace);
            $pos = $brace + 1;
            $len = \strlen($line);
            while ($pos < $len && $line[$pos] !== '}') {
                if (!preg_match('/\G([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\\]|\\\\.)*)",?/', $line, $m, 0, $pos)) {
                    break;
                }
                $names[] = $m[1];
                $values[] = self::unescape($m[2], true);
                $pos += \strlen($m[0]);
            }
            $rest = ltrim(substr($line, $pos + 1));
        } else {
            $name = $space === false ? $line : substr($line, 0, $space);
            $rest = $space === false ? '' : ltrim(substr($line, $space + 1));
        }
        $token = explode(' ', $rest)[0];
        return ['name' => $name, 'labelNames' => $names, 'labelValues' => $values, 'value' => self::number($token)];
    }

    private static function number(string $s): int|float
    {
        return match ($s) {
            '+Inf', 'Inf' => INF,
            '-Inf' => -INF,
            'NaN' => NAN,
            default => preg_match('/^-?\d+$/', $s) && \strlen($s) < 19 ? (int) $s : (float) $s,
        };
    }

    private static function unescape(string $s, bool $quotes): string
    {
        return preg_replace_callback('/\\\\(.)/s', static fn (array $m): string => match ($m[1]) {
            'n' => "\n",
            '\\' => '\\',
            '"' => $quotes ? '"' : '\\"',
            default => '\\' . $m[1],
        }, $s) ?? $s;
    }
}
