<?php

// The example application: one PHP script behind nginx + php-fpm, written
// against PromPHP's API. Only the storage line is promshm's.
//
//   GET /?route=NAME&v=X   counts the request under `route` and observes X
//   GET /?op=hold&s=N      takes a child for N seconds (a busy pool)
//   GET /?op=warm          reads the registry only (opens the shared area)
//
// Updates are buffered for the request and flushed when it ends, so the
// counter a scrape shows includes every request whose response was sent.

declare(strict_types=1);

require __DIR__ . '/bootstrap.php';

use Prometheus\CollectorRegistry;

$registry = new CollectorRegistry(new \Promshm\Storage());
$requests = $registry->getOrRegisterCounter('app', 'requests_total', 'Requests handled, by route.', ['route']);
$values = $registry->getOrRegisterHistogram('app', 'request_value', 'The value each request carried.', ['route']);

$route = (string) ($_GET['route'] ?? 'index');
if (preg_match('/^[a-z0-9_]{1,32}$/', $route) !== 1) {
    http_response_code(400);
    echo "bad route\n";
    return;
}

switch ((string) ($_GET['op'] ?? 'count')) {
    case 'warm':
        // Reading opens the pool's area (creating it if needed).
        $registry->getMetricFamilySamples();
        break;
    case 'hold':
        // Buffered, and never flushed if the child is killed while it sleeps.
        $requests->inc(['hold']);
        $state = getenv('PROMSHM_EXAMPLE_STATE');
        $tag = (string) ($_GET['tag'] ?? '');
        if ($state !== false && preg_match('/^[a-z0-9_]{1,32}$/', $tag) === 1) {
            file_put_contents("$state/hold-$tag.pid", (string) getmypid());
        }
        sleep(max(0, min(60, (int) ($_GET['s'] ?? 1))));
        break;
    default:
        $requests->inc([$route]);
        $values->observe((float) ($_GET['v'] ?? 0), [$route]);
}

header('Content-Type: text/plain');
echo 'ok pid=' . getmypid() . "\n";
