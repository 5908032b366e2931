<?php

declare(strict_types=1);

namespace Promshm\Tests;

use Prometheus\CollectorRegistry;
use Prometheus\Counter;
use Prometheus\Exception\MetricNotFoundException;
use Prometheus\Exception\MetricsRegistrationException;
use Prometheus\Gauge;
use Prometheus\Histogram;
use Prometheus\MetricFamilySamples;
use Prometheus\RenderTextFormat;
use Prometheus\Storage\Adapter;
use Prometheus\Summary;
use Promshm\Storage;

/** PromPHP's API on \Promshm\Storage: every type, labels, registration, samples. */
final class ApiTest extends PromshmTestCase
{
    private function text(CollectorRegistry $r): string
    {
        return (new RenderTextFormat())->render($r->getMetricFamilySamples());
    }

    public function testStorageIsAPromPhpAdapter(): void
    {
        $this->assertInstanceOf(Adapter::class, new Storage(['area' => $this->areaPath()]));
    }

    public function testCounterIncAndIncByWithLabels(): void
    {
        $r = $this->registry();
        $c = $r->getOrRegisterCounter('app', 'requests_total', 'Requests.', ['route', 'code']);
        $this->assertInstanceOf(Counter::class, $c);
        $c->inc(['home', '200']);
        $c->inc(['home', '200']);
        $c->incBy(5, ['api', '500']);
        $c->incBy(0.5, ['api', '500']);
        $text = $this->text($r);
        $this->assertStringContainsString("# TYPE app_requests_total counter\n", $text);
        $this->assertSame(2.0, self::sampleValue($text, 'app_requests_total{route="home",code="200"}'));
        $this->assertSame(5.5, self::sampleValue($text, 'app_requests_total{route="api",code="500"}'));
    }

    public function testCounterNameWithoutTotalGetsTotal(): void
    {
        $r = $this->registry();
        $r->getOrRegisterCounter('', 'jobs', 'Jobs.')->inc();
        $this->assertSame(1.0, self::sampleValue($this->text($r), 'jobs_total'));
    }

    public function testGaugeSetIncDecIncByDecBy(): void
    {
        $r = $this->registry();
        $g = $r->getOrRegisterGauge('app', 'queue_length', 'Queue.', ['queue']);
        $this->assertInstanceOf(Gauge::class, $g);
        $g->set(10, ['a']);
        $g->inc(['a']);
        $g->incBy(2.5, ['a']);
        $g->dec(['a']);
        $g->decBy(0.5, ['a']);
        $g->set(-3, ['b']);
        $text = $this->text($r);
        $this->assertSame(12.0, self::sampleValue($text, 'app_queue_length{queue="a"}'));
        $this->assertSame(-3.0, self::sampleValue($text, 'app_queue_length{queue="b"}'));
    }

    public function testGaugeSetIsGlobalAcrossStorages(): void
    {
        // Two storages on one area stand for two processes: set() moves the total.
        $path = $this->areaPath();
        $a = $this->registry($path)->getOrRegisterGauge('', 'temp', 'T.');
        $b = $this->registry($path)->getOrRegisterGauge('', 'temp', 'T.');
        $a->set(7);
        $b->set(3);
        $a->inc();
        $this->assertSame(4.0, self::sampleValue((new Storage(['area' => $path]))->render(), 'temp'));
    }

    public function testHistogramDefaultBucketsArePromPhps(): void
    {
        $this->assertSame([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0], Histogram::getDefaultBuckets());
        $r = $this->registry();
        $h = $r->getOrRegisterHistogram('app', 'latency_seconds', 'Latency.', ['route']);
        $h->observe(0.07, ['x']);
        $h->observe(3, ['x']);
        $h->observe(100, ['x']);
        $text = $this->text($r);
        foreach (['0.005' => 0, '0.05' => 0, '0.075' => 1, '2.5' => 1, '5.0' => 2, '10.0' => 2, '+Inf' => 3] as $le => $n) {
            $this->assertSame((float) $n, self::sampleValue($text, "app_latency_seconds_bucket{route=\"x\",le=\"{$le}\"}"), "le={$le}");
        }
        $this->assertSame(3.0, self::sampleValue($text, 'app_latency_seconds_count{route="x"}'));
        $this->assertEqualsWithDelta(103.07, self::sampleValue($text, 'app_latency_seconds_sum{route="x"}'), 1e-9);
        $this->assertSame(14 + 1, substr_count($text, 'app_latency_seconds_bucket{'));
    }

    public function testHistogramCustomAndExponentialBuckets(): void
    {
        $r = $this->registry();
        $h = $r->registerHistogram('', 'size', 'Sizes.', [], Histogram::exponentialBuckets(1, 10, 3));
        $h->observe(50);
        $text = $this->text($r);
        $this->assertSame(0.0, self::sampleValue($text, 'size_bucket{le="10.0"}'));
        $this->assertSame(1.0, self::sampleValue($text, 'size_bucket{le="100.0"}'));
    }

    public function testSummaryDefaultsArePromPhps(): void
    {
        $this->assertSame([0.01, 0.05, 0.5, 0.95, 0.99], Summary::getDefaultQuantiles());
        $r = $this->registry();
        $s = $r->getOrRegisterSummary('app', 'payload_bytes', 'Payload.', ['kind']);
        for ($i = 1; $i <= 100; $i++) {
            $s->observe($i, ['k']);
        }
        $text = $this->text($r);
        $this->assertSame(100.0, self::sampleValue($text, 'app_payload_bytes_count{kind="k"}'));
        $this->assertSame(5050.0, self::sampleValue($text, 'app_payload_bytes_sum{kind="k"}'));
        foreach ([0.01, 0.05, 0.5, 0.95, 0.99] as $q) {
            $v = self::sampleValue($text, "app_payload_bytes{kind=\"k\",quantile=\"{$q}\"}");
            $this->assertNotNull($v, "quantile {$q}");
            $this->assertEqualsWithDelta($q * 100, $v, max(2.0, $q * 100 * 0.05), "quantile {$q}");
        }
        // The window is PromPHP's 600 s: a family with another window is another shape.
        $this->expectException(MetricsRegistrationException::class);
        $this->registry()->registerSummary('app', 'payload_bytes', 'Payload.', ['kind'], 60);
    }

    public function testRegisterGetAndGetOrRegister(): void
    {
        $r = $this->registry();
        $c = $r->registerCounter('ns', 'c', 'C.');
        $this->assertSame($c, $r->getCounter('ns', 'c'));
        $this->assertSame($c, $r->getOrRegisterCounter('ns', 'c', 'C.'));
        $g = $r->registerGauge('ns', 'g', 'G.');
        $this->assertSame($g, $r->getGauge('ns', 'g'));
        $h = $r->registerHistogram('ns', 'h', 'H.');
        $this->assertSame($h, $r->getOrRegisterHistogram('ns', 'h', 'H.'));
        $s = $r->registerSummary('ns', 's', 'S.');
        $this->assertSame($s, $r->getSummary('ns', 's'));
        try {
            $r->registerCounter('ns', 'c', 'C.');
            $this->fail('registered twice');
        } catch (MetricsRegistrationException $e) {
            $this->assertStringContainsString('ns_c', $e->getMessage());
        }
        foreach (['getCounter', 'getGauge', 'getHistogram', 'getSummary'] as $get) {
            try {
                $r->{$get}('ns', 'missing');
                $this->fail("{$get} of a missing metric");
            } catch (MetricNotFoundException) {
                $this->addToAssertionCount(1);
            }
        }
    }

    public function testDefaultMetricPhpInfo(): void
    {
        $r = new CollectorRegistry(new Storage(['area' => $this->areaPath()]));
        $this->assertSame(1.0, self::sampleValue($this->text($r), 'php_info{version="' . PHP_VERSION . '"}'));
    }

    public function testMetricFamilySamplesShape(): void
    {
        $r = $this->registry();
        $r->getOrRegisterCounter('app', 'hits', 'Hits.', ['path'])->incBy(3, ['/a"b']);
        $families = array_values(array_filter($r->getMetricFamilySamples(), fn (MetricFamilySamples $f) => $f->getName() === 'app_hits_total'));
        $this->assertCount(1, $families);
        $f = $families[0];
        $this->assertSame('counter', $f->getType());
        $this->assertSame('Hits.', $f->getHelp());
        $samples = $f->getSamples();
        $this->assertCount(1, $samples);
        $this->assertSame('app_hits_total', $samples[0]->getName());
        $this->assertSame(['path'], $samples[0]->getLabelNames());
        $this->assertSame(['/a"b'], $samples[0]->getLabelValues());
        $this->assertSame('3', $samples[0]->getValue());
    }

    public function testStoragesOnAGivenAreaAndFamiliesOutliveTheirStorage(): void
    {
        $area = \Promshm\Area::open($this->areaPath());
        (new Storage(['area' => $area]))->counter('given', 'G.');   // that Storage is gone at once
        $family = (new Storage(['area' => $area]))->counter('given', 'G.');
        $family->counterAdd([], 2.0);                                  // still usable: it holds the area
        $this->assertSame(2.0, self::sampleValue($area->render(), 'given_total'), 'the given Area was not closed');
    }

    public function testGenericAdapterContract(): void
    {
        // PromPHP's own collectors call these with arrays: the same metrics result.
        $st = new Storage(['area' => $this->areaPath()]);
        $st->updateCounter(['name' => 'x', 'help' => 'X.', 'type' => 'counter', 'labelNames' => ['a'], 'labelValues' => ['1'], 'value' => 2, 'command' => Adapter::COMMAND_INCREMENT_INTEGER]);
        $st->updateGauge(['name' => 'y', 'help' => 'Y.', 'type' => 'gauge', 'labelNames' => [], 'labelValues' => [], 'value' => 9, 'command' => Adapter::COMMAND_SET]);
        $st->updateGauge(['name' => 'y', 'help' => 'Y.', 'type' => 'gauge', 'labelNames' => [], 'labelValues' => [], 'value' => -1, 'command' => Adapter::COMMAND_INCREMENT_FLOAT]);
        $st->updateHistogram(['name' => 'z', 'help' => 'Z.', 'type' => 'histogram', 'labelNames' => [], 'labelValues' => [], 'value' => 0.2, 'buckets' => [0.1, 1]]);
        $st->updateSummary(['name' => 'w', 'help' => 'W.', 'type' => 'summary', 'labelNames' => [], 'labelValues' => [], 'value' => 4, 'maxAgeSeconds' => 600, 'quantiles' => [0.5]]);
        $text = (new RenderTextFormat())->render($st->collect());
        $this->assertSame(2.0, self::sampleValue($text, 'x_total{a="1"}'));
        $this->assertSame(8.0, self::sampleValue($text, 'y'));
        $this->assertSame(1.0, self::sampleValue($text, 'z_bucket{le="1.0"}'));
        $this->assertSame(1.0, self::sampleValue($text, 'w_count'));
        $st->wipeStorage();
        $text = $st->render();
        $this->assertNull(self::sampleValue($text, 'x_total{a="1"}'));
        $this->assertNull(self::sampleValue($text, 'w_count'));
    }
}
