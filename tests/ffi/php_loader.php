<?php
// promshm through PHP's FFI, from include/promshm_ffi.h as it is (FFI::cdef).
//   php -d ffi.enable=1 php_loader.php LIBRARY HEADER AREA_FILE OUT_FILE N
// As cffi_loader.py: create the area, register with the _simple calls and an
// error object, pcntl_fork, N increments and observations in each process,
// render_alloc, exact totals, free; prints `php ok ... ns_per_inc=X`.
[, $libPath, $header, $areaFile, $outFile, $n] = $argv;
$n = (int) $n;
$lib = FFI::cdef(file_get_contents($header), $libPath);
$err = $lib->promshm_error_new();

function check(FFI $lib, $err, int $rc, string $what): void
{
    if ($rc !== $lib->PROMSHM_RESULT_OK) {
        fwrite(STDERR, "php: $what failed: $rc " . FFI::string($lib->promshm_error_detail($err)) . "\n");
        exit(1);
    }
}

/** A C array of C strings (kept alive by the returned PHP values). */
function cstrings(FFI $lib, array $strings): array
{
    $keep = [];
    $arr = $lib->new('const char *[' . count($strings) . ']');
    foreach ($strings as $i => $s) {
        $buf = $lib->new('char[' . (strlen($s) + 1) . ']', false);
        FFI::memcpy($buf, $s . "\0", strlen($s) + 1);
        $keep[] = $buf;
        $arr[$i] = $lib->cast('const char *', $buf);
    }
    return [$arr, $keep];
}

$area = $lib->new('const promshm_area *');
check($lib, $err, $lib->promshm_area_create_e($areaFile, null, FFI::addr($area), $err), 'area_create');
$reg = $lib->new('const promshm_registry *');
check($lib, $err, $lib->promshm_registry_new_e($area, null, null, 0, FFI::addr($reg), $err), 'registry_new');
[$labels, $keepLabels] = cstrings($lib, ['lang']);
$counter = $lib->new('const promshm_family *');
check($lib, $err, $lib->promshm_registry_counter_simple($reg, 'ffi_requests', 'Requests.', $labels, 1, FFI::addr($counter), $err), 'counter');
$buckets = $lib->new('double[2]');
$buckets[0] = 0.1;
$buckets[1] = 1.0;
$hist = $lib->new('const promshm_family *');
check($lib, $err, $lib->promshm_registry_histogram_simple($reg, 'ffi_latency', 'Latency.', $labels, 1, $buckets, 2, FFI::addr($hist), $err), 'histogram');

function series(FFI $lib, $err, $family, string $value)
{
    [$values, $keep] = cstrings($lib, [$value]);
    $out = $lib->new('const promshm_series *');
    check($lib, $err, $lib->promshm_family_labels_e($family, $values, 1, FFI::addr($out), $err), 'labels');
    return $out;
}

$c = series($lib, $err, $counter, 'php');
$h = series($lib, $err, $hist, 'php');
$pid = pcntl_fork();
if ($pid < 0) {
    fwrite(STDERR, "php: fork failed\n");
    exit(1);
}
for ($i = 0; $i < $n; $i++) {
    $lib->promshm_counter_inc($c);
    $lib->promshm_histogram_observe($h, 0.5);
}
check($lib, $err, $lib->promshm_flush_e($err), 'flush');
if ($pid === 0) {
    exit(0);
}
pcntl_waitpid($pid, $status);
if (!pcntl_wifexited($status) || pcntl_wexitstatus($status) !== 0) {
    fwrite(STDERR, "php: child failed ($status)\n");
    exit(1);
}

$bench = series($lib, $err, $counter, 'php-bench');
$t0 = hrtime(true);
for ($i = 0; $i < $n; $i++) {
    $lib->promshm_counter_inc($bench);
}
$ns = (hrtime(true) - $t0) / $n;

$text = $lib->new('char *');
$len = $lib->new('size_t');
check($lib, $err, $lib->promshm_area_render_alloc($area, $lib->PROMSHM_FORMAT_PROMETHEUS, FFI::addr($text), FFI::addr($len), $err), 'render_alloc');
$page = FFI::string($text, $len->cdata);
$lib->promshm_render_free($text);
$lines = explode("\n", $page);
foreach (['ffi_requests_total{lang="php"} ' . 2 * $n, 'ffi_latency_count{lang="php"} ' . 2 * $n] as $want) {
    if (!in_array($want, $lines, true)) {
        fwrite(STDERR, "php: $want not in the page:\n$page");
        exit(1);
    }
}
file_put_contents($outFile, $page);
foreach ([$c, $h, $bench] as $s) {
    $lib->promshm_series_free($s);
}
$lib->promshm_family_free($counter);
$lib->promshm_family_free($hist);
$lib->promshm_registry_free($reg);
$lib->promshm_area_free($area);
$lib->promshm_error_free($err);
printf("php ok counter=%d ns_per_inc=%.1f\n", 2 * $n, $ns);
