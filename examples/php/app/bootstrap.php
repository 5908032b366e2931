<?php

// Loads the promshm PHP package (bindings/php) for the example app: the
// Composer autoloader when `composer install` has been run there, else the
// package's own autoloader, else a plain PSR-4 loader over its src/ tree.

declare(strict_types=1);

$package = getenv('PROMSHM_PHP_PACKAGE') ?: dirname(__DIR__, 3) . '/bindings/php';
foreach (['/vendor/autoload.php', '/autoload.php'] as $file) {
    if (is_file($package . $file)) {
        require_once $package . $file;
        return;
    }
}
spl_autoload_register(static function (string $class) use ($package): void {
    foreach (['Promshm\\' => '/src/', 'Prometheus\\' => '/compat/Prometheus/'] as $prefix => $dir) {
        if (str_starts_with($class, $prefix)) {
            $file = $package . $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
            if (is_file($file)) {
                require_once $file;
            }
            return;
        }
    }
});
