<?php

// The php-fpm benchmark's app (fpm_bench.py): a request that counts itself
// and observes a value, with the storage named by ?store= (nothing, apcu,
// promshm), or does nothing at all with ?store=bare.

declare(strict_types=1);

$store = (string) ($_GET['store'] ?? 'bare');
if ($store !== 'bare') {
    require __DIR__ . '/../../../../examples/php/app/bootstrap.php';
    require_once __DIR__ . '/../ApcuAdapter.php';
    require_once __DIR__ . '/../NullAdapter.php';
    $storage = match ($store) {
        'nothing' => new \Promshm\Bench\NullAdapter(),
        'apcu' => new \Promshm\Bench\ApcuAdapter(),
        'promshm' => new \Promshm\Storage(),
    };
    $registry = new \Prometheus\CollectorRegistry($storage);
    $route = ['index', 'login', 'search', 'cart'][mt_rand(0, 3)];
    $registry->getOrRegisterCounter('app', 'requests_total', 'Requests.', ['route'])->inc([$route]);
    $registry->getOrRegisterHistogram('app', 'request_seconds', 'Latency.', ['route'])->observe(mt_rand(1, 1000) / 1000, [$route]);
}
echo "ok\n";
