<?php

declare(strict_types=1);

namespace Promshm\Tests;

use Promshm\Native\C;
use Promshm\Native\Library;

/**
 * The two ways of loading the library (FFI::cdef with ffi.enable=true,
 * FFI::scope from the opcache.preload script with ffi.enable=preload) and
 * the generated declarations.
 */
final class LoadingTest extends PromshmTestCase
{
    public function testGeneratedDeclarationsAreUpToDate(): void
    {
        $tool = \dirname(__DIR__) . '/tools/gen_ffi.py';
        exec('python3 ' . escapeshellarg($tool) . ' --check 2>&1', $out, $rc);
        $this->assertSame(0, $rc, implode("\n", $out));
    }

    public function testDriftAndUnknownConstructsAreDetected(): void
    {
        $tool = escapeshellarg(\dirname(__DIR__) . '/tools/gen_ffi.py');
        $header = (string) file_get_contents(\dirname(__DIR__, 3) . '/include/promshm.h');
        $changed = "{$this->dir}/changed.h";
        file_put_contents($changed, str_replace('#define PROMSHM_FORMAT_OPENMETRICS 1', "#define PROMSHM_FORMAT_OPENMETRICS 1\n#define PROMSHM_FORMAT_NEW 2", $header));
        exec("python3 {$tool} --check --header " . escapeshellarg($changed) . ' 2>&1', $out, $rc);
        $this->assertSame(1, $rc, implode("\n", $out));
        $this->assertStringContainsString('+    PROMSHM_FORMAT_NEW = 2,', implode("\n", $out));
        $unknown = "{$this->dir}/unknown.h";
        file_put_contents($unknown, str_replace('#ifdef __cplusplus', '#if defined(__GNUC__)', $header));
        exec("python3 {$tool} --check --header " . escapeshellarg($unknown) . ' 2>&1', $out2, $rc2);
        $this->assertSame(2, $rc2, implode("\n", $out2));
        $this->assertStringContainsString('unknown preprocessor condition', implode("\n", $out2));
    }

    public function testConstantsMatchTheLibrary(): void
    {
        $ffi = Library::ffi();
        $this->assertSame(C::PROMSHM_VERSION_NUMBER, $ffi->promshm_version_number());
        $this->assertSame(C::PROMSHM_VERSION_STRING, $ffi->promshm_version());
        $this->assertSame(C::PROMSHM_FORMAT_OPENMETRICS, $ffi->PROMSHM_FORMAT_OPENMETRICS);
        $this->assertSame('invalid label name', $ffi->promshm_result_message(C::PROMSHM_RESULT_INVALID_LABEL_NAME));
        $this->assertSame('cdef', Library::mode());
    }

    public function testPreloadedScope(): void
    {
        $ext = (string) ini_get('extension_dir');
        if (!is_file("{$ext}/opcache.so")) {
            $this->markTestSkipped('OPcache is not installed (php8.2-opcache)');
        }
        $header = $this->dir . '/promshm.h';
        file_put_contents($header, Library::scopedDeclarations((string) getenv('PROMSHM_LIBRARY')));
        $ini = [
            "ffi.preload={$header}",
            'zend_extension=opcache',
            'opcache.enable=1',
            'opcache.enable_cli=1',
            'ffi.enable=preload',
            'opcache.preload=' . \dirname(__DIR__) . '/preload.php',
        ];
        if (posix_geteuid() === 0) {
            $ini[] = 'opcache.preload_user=root';
        }
        $code = <<<'PHP'
            $r = new \Prometheus\CollectorRegistry(new \Promshm\Storage(['area' => getenv('TEST_AREA')]), false);
            $r->getOrRegisterCounter('', 'preloaded', 'P.')->incBy(3);
            echo \Promshm\Native\Library::mode(), "\n";
            echo (new \Prometheus\RenderTextFormat())->render($r->getMetricFamilySamples());
            PHP;
        [$rc, $out, $err] = $this->runPhp($code, $ini, ['TEST_AREA' => $this->areaPath()]);
        $this->assertSame(0, $rc, $out . $err);
        $this->assertStringStartsWith("scope\n", $out, $err);
        $this->assertSame(3.0, self::sampleValue($out, 'preloaded_total'), $out . $err);
    }

    public function testUnloadableLibraryIsAClearError(): void
    {
        $code = <<<'PHP'
            try { new \Promshm\Storage(); echo "loaded\n"; }
            catch (\Promshm\Exception\InternalException $e) { echo get_class($e), ': ', $e->getMessage(), "\n"; }
            PHP;
        [$rc, $out, $err] = $this->runPhp($code, ['ffi.enable=1'], ['PROMSHM_LIBRARY' => $this->dir . '/no-such-libpromshm.so']);
        $this->assertSame(0, $rc, $err);
        $this->assertStringContainsString('InternalException: promshm: cannot load', $out);
        $this->assertStringContainsString('no-such-libpromshm.so', $out);
        [$rc, $out, $err] = $this->runPhp($code, ['ffi.enable=preload']);
        $this->assertSame(0, $rc, $err);
        // The CLI allows FFI::cdef under ffi.enable=preload; ffi.enable=0 is refused with a hint.
        [$rc, $out, $err] = $this->runPhp($code, ['ffi.enable=0']);
        $this->assertSame(0, $rc, $err);
        $this->assertStringContainsString('InternalException', $out, $err);
    }
}
