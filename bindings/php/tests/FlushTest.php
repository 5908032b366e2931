<?php

declare(strict_types=1);

namespace Promshm\Tests;

use Promshm\Storage;

/**
 * Request-end flushing: buffered updates reach the area when the script
 * ends, on exit(), after a fatal error and after later shutdown functions;
 * eager mode needs no flush. Each case runs in its own PHP process, which
 * then kills itself with SIGKILL from a shutdown function registered after
 * promshm's, so that nothing but promshm's shutdown flush (not the
 * library's atexit handler) can have written the updates.
 */
final class FlushTest extends PromshmTestCase
{
    private const PRELUDE = <<<'PHP'
        use Prometheus\CollectorRegistry;
        $r = new CollectorRegistry(new \Promshm\Storage(['area' => getenv('TEST_AREA'), 'eager' => getenv('TEST_EAGER') === '1']), false);
        $c = $r->getOrRegisterCounter('', 'hits', 'Hits.');
        $h = $r->getOrRegisterHistogram('', 'lat', 'Latency.', [], [1]);
        $kill = static function (): void { posix_kill(getmypid(), SIGKILL); };
        PHP;

    private function runCase(string $body, bool $eager = false): array
    {
        $path = $this->areaPath();
        [$rc, $out, $err] = $this->runPhp(self::PRELUDE . "\n" . $body, env: ['TEST_AREA' => $path, 'TEST_EAGER' => $eager ? '1' : '0']);
        $text = (new Storage(['area' => $path]))->render();
        return [$rc, $out . $err, self::sampleValue($text, 'hits_total'), self::sampleValue($text, 'lat_count')];
    }

    public function testBufferedUpdatesAreLostWithoutAFlush(): void
    {
        // The control: updates are really buffered, so the tests below prove the flush.
        [, $log, $hits, $lat] = $this->runCase('for ($i = 0; $i < 5; $i++) { $c->inc(); $h->observe(0.5); } $kill();');
        $this->assertSame(0.0, $hits, $log);
        $this->assertSame(0.0, $lat, $log);
    }

    public function testFlushedAtScriptEnd(): void
    {
        [, $log, $hits, $lat] = $this->runCase('register_shutdown_function($kill); for ($i = 0; $i < 5; $i++) { $c->inc(); $h->observe(0.5); }');
        $this->assertSame(5.0, $hits, $log);
        $this->assertSame(5.0, $lat, $log);
    }

    public function testFlushedOnExit(): void
    {
        [, $log, $hits] = $this->runCase('register_shutdown_function($kill); $c->incBy(7); exit(3);');
        $this->assertSame(7.0, $hits, $log);
    }

    public function testExitCodeIsKept(): void
    {
        [$rc, $log, $hits] = $this->runCase('$c->incBy(2); exit(3);');
        $this->assertSame(3, $rc, $log);
        $this->assertSame(2.0, $hits, $log);
    }

    public function testFlushedAfterAFatalError(): void
    {
        [, $log, $hits, $lat] = $this->runCase('register_shutdown_function($kill); $c->incBy(4); $h->observe(2); promshm_no_such_function();');
        $this->assertStringContainsString('promshm_no_such_function', $log);
        $this->assertSame(4.0, $hits, $log);
        $this->assertSame(1.0, $lat, $log);
    }

    public function testFlushedAfterAnUncaughtException(): void
    {
        [, $log, $hits] = $this->runCase('register_shutdown_function($kill); $c->incBy(6); throw new RuntimeException("boom");');
        $this->assertStringContainsString('boom', $log);
        $this->assertSame(6.0, $hits, $log);
    }

    public function testUpdatesOfLaterShutdownFunctionsAreFlushed(): void
    {
        $body = '$c->inc(); register_shutdown_function(static function () use ($c, $kill): void { $c->incBy(10); register_shutdown_function($kill); });';
        [, $log, $hits] = $this->runCase($body);
        $this->assertSame(11.0, $hits, $log);
    }

    public function testEagerModeNeedsNoFlush(): void
    {
        [, $log, $hits, $lat] = $this->runCase('for ($i = 0; $i < 5; $i++) { $c->inc(); $h->observe(0.5); } $kill();', eager: true);
        $this->assertSame(5.0, $hits, $log);
        $this->assertSame(5.0, $lat, $log);
    }

    public function testExplicitFlushKeepsWhatWasFlushed(): void
    {
        [, $log, $hits] = $this->runCase('$c->incBy(600); \Promshm\Storage::flush(); $c->incBy(400); $kill();');
        $this->assertSame(600.0, $hits, $log);
    }
}
