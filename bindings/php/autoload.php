<?php

declare(strict_types=1);

// For use without Composer: require this file. It loads Promshm\ from src/
// and, after any autoloader already registered, PromPHP's class names from
// compat/ (see autoload-compat.php).
spl_autoload_register(static function (string $class): void {
    if (str_starts_with($class, 'Promshm\\')) {
        $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, 8)) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
require_once __DIR__ . '/autoload-compat.php';
