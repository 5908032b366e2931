<?php

declare(strict_types=1);

// The tests load the built library: PROMSHM_LIBRARY, else the repository's
// target/release/libpromshm.so (cargo build --release --lib).
$lib = getenv('PROMSHM_LIBRARY');
if ($lib === false || $lib === '') {
    $lib = dirname(__DIR__, 3) . '/target/release/libpromshm.so';
    putenv("PROMSHM_LIBRARY={$lib}");
}
if (!is_file($lib)) {
    fwrite(STDERR, "promshm tests: {$lib} not found; run cargo build --release --lib\n");
    exit(1);
}
if ((string) ini_get('ffi.enable') !== '1') {
    fwrite(STDERR, "promshm tests: run PHPUnit with -d ffi.enable=1 (the preload mode is tested in a child process)\n");
    exit(1);
}
require dirname(__DIR__) . '/autoload.php';
require __DIR__ . '/PromshmTestCase.php';
require __DIR__ . '/FastCgi.php';
