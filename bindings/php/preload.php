<?php

declare(strict_types=1);

// opcache.preload script for ffi.enable=preload, php-fpm's default. With
// that setting PHP allows the FFI API only in preloaded code, so this script
// preloads the promshm classes, and the FFI scope "promshm" they use comes
// from ffi.preload (a header written by tools/scope-header.php):
//
//   ffi.enable=preload
//   ffi.preload=/etc/php/8.2/promshm.h       ; php tools/scope-header.php LIB > this file
//   opcache.enable=1
//   opcache.preload=/path/to/bindings/php/preload.php
//   opcache.preload_user=www-data            ; required when the master runs as root
//
// Without ffi.preload and without opcache.preload_user (a master that is not
// root), this script declares the scope itself with FFI::load() (PHP refuses
// FFI::load() in preloading when opcache.preload_user is set).
//
// PromPHP's interfaces are taken from Composer's autoloader when
// PROMSHM_PRELOAD_AUTOLOAD names it (vendor/autoload.php: an installed
// promphp/prometheus_client_php then wins), else from this package.

$autoload = getenv('PROMSHM_PRELOAD_AUTOLOAD');
require_once \is_string($autoload) && $autoload !== '' ? $autoload : __DIR__ . '/autoload.php';

(static function (): void {
    $scope = true;
    try {
        \FFI::scope(\Promshm\Native\Library::SCOPE);
    } catch (\Throwable) {
        $scope = false;
    }
    if (!$scope) {
        if ((string) ini_get('opcache.preload_user') !== '') {
            throw new \RuntimeException('promshm preload: no FFI scope "promshm": set ffi.preload to the header tools/scope-header.php writes (FFI::load() is refused with opcache.preload_user)');
        }
        $file = tempnam(sys_get_temp_dir(), 'promshm-ffi-');
        if ($file === false) {
            throw new \RuntimeException('promshm preload: cannot make a temporary file');
        }
        try {
            chmod($file, 0600);
            file_put_contents($file, \Promshm\Native\Library::scopedDeclarations());
            if (\FFI::load($file) === null) {
                throw new \RuntimeException('promshm preload: FFI::load failed (see the warning above)');
            }
        } finally {
            @unlink($file);
        }
    }
    // Preload every class of the package (FFI calls must come from preloaded code).
    $src = __DIR__ . '/src';
    $it = new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator($src, \FilesystemIterator::SKIP_DOTS));
    $classes = [];
    foreach ($it as $f) {
        if ($f->getExtension() === 'php') {
            $classes[] = 'Promshm\\' . str_replace('/', '\\', substr($f->getPathname(), \strlen($src) + 1, -4));
        }
    }
    sort($classes);
    foreach ($classes as $class) {
        if (!class_exists($class) && !interface_exists($class) && !trait_exists($class)) {
            throw new \RuntimeException("promshm preload: cannot load {$class}");
        }
    }
})();
