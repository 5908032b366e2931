<?php

declare(strict_types=1);

// Write the FFI declarations of promshm with FFI_SCOPE "promshm" and FFI_LIB
// set, for PHP's ffi.preload setting (php-fpm with ffi.enable=preload):
//
//   php bindings/php/tools/scope-header.php /usr/local/lib/libpromshm.so > /etc/php/8.2/promshm.h
//   ; php.ini (or php-fpm's -d): ffi.preload=/etc/php/8.2/promshm.h
//
// Without an argument the library is found as Promshm\Native\Library says
// (PROMSHM_LIBRARY, else the installed locations).

require_once __DIR__ . '/../src/Exception/PromshmException.php';
require_once __DIR__ . '/../src/Exception/Details.php';
require_once __DIR__ . '/../src/Exception/InternalException.php';
require_once __DIR__ . '/../src/Native/C.php';
require_once __DIR__ . '/../src/Native/Library.php';

$lib = $argv[1] ?? \Promshm\Native\Library::libraryPath();
if ($lib !== 'libpromshm.so' && !is_file($lib)) {
    fwrite(STDERR, "scope-header: {$lib}: no such file\n");
    exit(1);
}
echo \Promshm\Native\Library::scopedDeclarations($lib);
