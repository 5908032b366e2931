<?php

declare(strict_types=1);

// PromPHP's class names (Prometheus\CollectorRegistry, ...), declared from
// compat/ only when nothing else declares them. This loader is registered
// after Composer's own (which Composer prepends), so an installed
// promphp/prometheus_client_php always wins: its classes are used, with
// \Promshm\Storage as their Adapter.
spl_autoload_register(static function (string $class): void {
    if (!str_starts_with($class, 'Prometheus\\')) {
        return;
    }
    $file = __DIR__ . '/compat/' . str_replace('\\', '/', $class) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
