<?php

declare(strict_types=1);

// opcache.preload script for ffi.enable=preload (php-fpm's default):
//
//   opcache.enable=1
//   opcache.preload=/path/to/bindings/php/preload.php
//   opcache.preload_user=www-data      ; needed when the master runs as root
//
// It declares the FFI scope "promshm" (the generated declarations, bound to
// the library found as Promshm\Native\Library::libraryPath() says: the
// PROMSHM_LIBRARY constant or environment variable of the master, else the
// installed location). Promshm\Native\Library::ffi() then uses
// FFI::scope('promshm') in every request.

require_once __DIR__ . '/src/Native/C.php';
require_once __DIR__ . '/src/Native/Library.php';

(static function (): void {
    $decl = \Promshm\Native\Library::scopedDeclarations();
    $dir = sys_get_temp_dir();
    $file = tempnam($dir, 'promshm-ffi-');
    if ($file === false) {
        throw new \RuntimeException("promshm preload: cannot make a temporary file in {$dir}");
    }
    try {
        chmod($file, 0600);
        file_put_contents($file, $decl);
        if (\FFI::load($file) === null) {
            throw new \RuntimeException('promshm preload: FFI::load failed (see the warning above)');
        }
    } finally {
        @unlink($file);
    }
})();
