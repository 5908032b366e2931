<?php

// Per-update cost and scrape time of promshm vs an APCu store vs nothing,
// through PromPHP's API (CollectorRegistry, counters, histograms,
// RenderTextFormat), in one PHP CLI process. Run it with bench.sh, which
// sets ffi.enable, apc.enable_cli and a fresh PROMSHM_AREA:
//
//   bash bindings/php/bench/bench.sh            # the figures in docs/PERFORMANCE.md
//   bash bindings/php/bench/bench.sh --quick    # a smoke run (CI); numbers mean nothing
//
// Rows: one update on a metric object resolved beforehand (`inc()`, a
// labelled `inc([...])`, `observe()` into PromPHP's 14 default buckets);
// "request" (a new registry and storage, one labelled inc, one observe,
// the end-of-request flush: what each php-fpm request pays); and the scrape
// (`RenderTextFormat::render($registry->getMetricFamilySamples())`) of a
// counter with 10,000 series. Each figure is the median of several runs.

declare(strict_types=1);

require __DIR__ . '/../../../examples/php/app/bootstrap.php';
require __DIR__ . '/ApcuAdapter.php';
require __DIR__ . '/NullAdapter.php';

use Prometheus\CollectorRegistry;
use Prometheus\RenderTextFormat;
use Prometheus\Storage\Adapter;
use Promshm\Bench\ApcuAdapter;
use Promshm\Bench\NullAdapter;

$quick = in_array('--quick', $argv, true);
$iterations = $quick ? 2_000 : 200_000;
$requests = $quick ? 200 : 5_000;
$series = $quick ? 500 : 10_000;
$runs = $quick ? 1 : 5;

/** @var array<string, callable(): Adapter> */
$stores = [
    'nothing' => static fn () => new NullAdapter(),
    'APCu' => static fn () => new ApcuAdapter(),
    'promshm' => static fn () => new \Promshm\Storage(),
];

/** The end of a request: promshm's flush of the buffered updates (the others have none). */
function finish(Adapter $storage): void
{
    if (method_exists($storage, 'flush')) {
        $storage->flush();
    }
}

function median(array $xs): float
{
    sort($xs);
    return $xs[intdiv(count($xs), 2)];
}

/** ns per iteration of $body($i) over $n iterations, then $after(); median of $runs. */
function measure(int $n, int $runs, callable $body, callable $after): float
{
    $samples = [];
    for ($r = 0; $r < $runs; $r++) {
        $t0 = hrtime(true);
        for ($i = 0; $i < $n; $i++) {
            $body($i);
        }
        $after();
        $samples[] = (hrtime(true) - $t0) / $n;
    }
    return median($samples);
}

$values = [];
for ($i = 0; $i < 1024; $i++) {
    $values[] = 0.001 * (20000 ** ($i / 1023));   // 1 ms .. 20 s, log-uniform
}

$floor = measure($iterations, $runs, static function (int $i): void {
}, static fn () => null);

$results = [];
foreach ($stores as $store => $make) {
    if ($store === 'APCu') {
        apcu_clear_cache();
    }
    $storage = $make();
    $registry = new CollectorRegistry($storage);
    $plain = $registry->getOrRegisterCounter('bench', 'plain_total', 'Plain counter.');
    $labelled = $registry->getOrRegisterCounter('bench', 'labelled_total', 'Labelled counter.', ['route', 'code']);
    $histogram = $registry->getOrRegisterHistogram('bench', 'latency_seconds', 'Histogram.', ['route']);
    $routes = ['index', 'login', 'search', 'cart'];
    $after = static fn () => finish($storage);

    $results[$store]['inc()'] = measure($iterations, $runs, static fn (int $i) => $plain->inc(), $after);
    $results[$store]['labelled inc'] = measure($iterations, $runs,
        static fn (int $i) => $labelled->inc([$routes[$i & 3], '200']), $after);
    $results[$store]['observe'] = measure($iterations, $runs,
        static fn (int $i) => $histogram->observe($values[$i & 1023], [$routes[$i & 3]]), $after);
    $results[$store]['request'] = measure($requests, $runs, static function (int $i) use ($make, $routes, $values): void {
        $storage = $make();
        $registry = new CollectorRegistry($storage);
        $registry->getOrRegisterCounter('bench', 'requests_total', 'Requests.', ['route'])->inc([$routes[$i & 3]]);
        $registry->getOrRegisterHistogram('bench', 'request_seconds', 'Latency.', ['route'])
            ->observe($values[$i & 1023], [$routes[$i & 3]]);
        finish($storage);
    }, static fn () => null);

    // The scrape of 10,000 series.
    $wide = $registry->getOrRegisterCounter('bench', 'wide_total', 'Many series.', ['id']);
    for ($i = 0; $i < $series; $i++) {
        $wide->inc([(string) $i]);
    }
    finish($storage);
    $render = new RenderTextFormat();
    $pages = [];
    $scrapes = [];
    for ($r = 0; $r < max(3, $runs); $r++) {
        $t0 = hrtime(true);
        $page = $render->render($registry->getMetricFamilySamples());
        $scrapes[] = (hrtime(true) - $t0) / 1e6;
        $pages[] = $page;
    }
    $results[$store]['scrape'] = median($scrapes);
    $lines = substr_count($pages[0], "\nbench_wide_total{");
    if ($store !== 'nothing' && $lines !== $series) {
        fwrite(STDERR, "$store: the scrape shows $lines of $series series\n");
        exit(1);
    }
}

$ops = ['inc()', 'labelled inc', 'observe', 'request'];
printf("PHP %s, %d iterations per row (%d per request row), median of %d; empty loop %.1f ns\n\n",
    PHP_VERSION, $iterations, $requests, $runs, $floor);
echo "| operation | nothing | APCu | promshm | APCu / promshm |\n| --- | ---: | ---: | ---: | ---: |\n";
foreach ($ops as $op) {
    printf("| %s | %.0f ns | %.0f ns | %.0f ns | %.2f× |\n", $op, $results['nothing'][$op], $results['APCu'][$op],
        $results['promshm'][$op], $results['APCu'][$op] / $results['promshm'][$op]);
}
printf("| scrape of %s series | %.1f ms | %.1f ms | %.1f ms | %.2f× |\n", number_format($series),
    $results['nothing']['scrape'], $results['APCu']['scrape'], $results['promshm']['scrape'],
    $results['APCu']['scrape'] / $results['promshm']['scrape']);
