<?php

declare(strict_types=1);

namespace Promshm\Tests;

use Prometheus\RenderTextFormat;
use Promshm\Exposition;
use Promshm\Native\C;
use Promshm\Storage;

/** Rendering: the library's own text, promtool-clean, through PromPHP's render call. */
final class RenderTest extends PromshmTestCase
{
    private function populate(): Storage
    {
        $st = new Storage(['area' => $this->areaPath()]);
        $r = new \Prometheus\CollectorRegistry($st);
        $r->getOrRegisterCounter('app', 'requests_total', "Requests, with a \\ and a\nnewline.", ['route'])->inc(["we\"ird\\\nvalue"]);
        $r->getOrRegisterGauge('app', 'temperature', 'T.', ['room'])->set(21.5, ['kitchen']);
        $r->getOrRegisterHistogram('app', 'latency_seconds', 'L.', ['route'])->observe(0.2, ['a']);
        $r->getOrRegisterSummary('app', 'size_bytes', 'S.', [])->observe(10);
        return $st;
    }

    public function testRenderPassesPromtool(): void
    {
        $st = $this->populate();
        $r = new \Prometheus\CollectorRegistry($st, false);
        foreach ([true, false] as $sorted) {
            $text = (new RenderTextFormat())->render($r->getMetricFamilySamples($sorted));
            [$ok, $out] = $this->promtool($text);
            $this->assertTrue($ok, "promtool check metrics (sorted={$sorted}):\n{$out}\n{$text}");
        }
        [$ok, $out] = $this->promtool($st->render());
        $this->assertTrue($ok, $out);
    }

    public function testRenderTextFormatOutputsTheLibrarysTextExactly(): void
    {
        $st = $this->populate();
        $text = $st->render();
        $families = Exposition::parse($text);
        // Splitting into families loses and changes nothing ...
        $this->assertSame($text, implode('', array_column($families, 'promshmText')));
        // ... and RenderTextFormat of the unsorted samples is the area's render
        // (up to the promshm_* self-metrics, which change with every render).
        $again = (new RenderTextFormat())->render($st->collect(false));
        $strip = static fn (string $t): string => implode("\n", array_filter(explode("\n", $t), static fn (string $l): bool => !preg_match('/^(# (HELP|TYPE) )?promshm_/', $l)));
        $this->assertSame($strip($text), $strip($again));
        $this->assertSame(1.0, self::sampleValue($again, 'app_requests_total{route="we\"ird\\\\\nvalue"}'));
    }

    public function testSamplesParseEscapesAndSpecialValues(): void
    {
        $families = Exposition::parse("# HELP a x\\\\y\\nz\n# TYPE a gauge\na{l=\"q\\\"\\\\\\n\"} +Inf\na{l=\"n\"} NaN\n# TYPE b counter\nb_total 3\n");
        $this->assertCount(2, $families);
        $this->assertSame("x\\y\nz", $families[0]['help']);
        $this->assertSame(["q\"\\\n"], $families[0]['samples'][0]['labelValues']);
        $this->assertSame(INF, $families[0]['samples'][0]['value']);
        $this->assertNan($families[0]['samples'][1]['value']);
        $this->assertSame('counter', $families[1]['type']);
        $this->assertSame(3, $families[1]['samples'][0]['value']);
    }

    public function testOpenMetrics(): void
    {
        $st = $this->populate();
        $om = $st->render(C::PROMSHM_FORMAT_OPENMETRICS);
        $this->assertStringEndsWith("# EOF\n", $om);
        $this->assertStringContainsString('# TYPE app_requests counter', $om);
    }
}
