<?php

declare(strict_types=1);

namespace Promshm\Tests;

use Promshm\Storage;

/**
 * Several processes (pcntl_fork()ed workers, as php-fpm children are) update
 * one area; every total is exact. The workers run in a child PHP process so
 * that PHPUnit's own state is never forked.
 */
final class MultiProcessTest extends PromshmTestCase
{
    private const WORKERS = 4;
    private const ITERATIONS = 5000;

    private function workerScript(string $storageExpr): string
    {
        $w = self::WORKERS;
        $n = self::ITERATIONS;
        return <<<PHP
            use Prometheus\\CollectorRegistry;
            use Promshm\\Storage;
            \$pids = [];
            for (\$w = 0; \$w < {$w}; \$w++) {
                \$pid = pcntl_fork();
                if (\$pid === 0) {
                    \$r = new CollectorRegistry({$storageExpr}, false);
                    \$c = \$r->getOrRegisterCounter('app', 'jobs_total', 'Jobs.', ['parity']);
                    \$h = \$r->getOrRegisterHistogram('app', 'job_seconds', 'Durations.', [], [0.25, 0.5]);
                    \$s = \$r->getOrRegisterSummary('app', 'job_bytes', 'Sizes.');
                    \$g = \$r->getOrRegisterGauge('app', 'workers_started', 'Workers.');
                    \$g->inc();
                    for (\$i = 0; \$i < {$n}; \$i++) {
                        \$c->inc([\$i % 2 ? 'odd' : 'even']);
                        \$h->observe((\$i % 10) / 10);
                        \$s->observe(1);
                    }
                    exit(0); // the request-end flush runs on exit()
                }
                \$pids[] = \$pid;
            }
            \$failed = 0;
            foreach (\$pids as \$p) {
                pcntl_waitpid(\$p, \$status);
                if (!pcntl_wifexited(\$status) || pcntl_wexitstatus(\$status) !== 0) {
                    \$failed++;
                }
            }
            echo "failed=\$failed\\n";
            PHP;
    }

    private function assertExact(string $text): void
    {
        $total = (float) (self::WORKERS * self::ITERATIONS);
        $this->assertSame($total / 2, self::sampleValue($text, 'app_jobs_total{parity="even"}'), $text);
        $this->assertSame($total / 2, self::sampleValue($text, 'app_jobs_total{parity="odd"}'));
        $this->assertSame($total, self::sampleValue($text, 'app_job_seconds_count'));
        $this->assertSame($total * 0.3, self::sampleValue($text, 'app_job_seconds_bucket{le="0.25"}'));
        $this->assertSame($total * 0.6, self::sampleValue($text, 'app_job_seconds_bucket{le="0.5"}'));
        $this->assertEqualsWithDelta($total * 0.45, self::sampleValue($text, 'app_job_seconds_sum'), 1e-6);
        $this->assertSame($total, self::sampleValue($text, 'app_job_bytes_count'));
        $this->assertSame((float) self::WORKERS, self::sampleValue($text, 'app_workers_started'));
    }

    public function testForkedWorkersOnOneAreaFileAreExact(): void
    {
        if (!\function_exists('pcntl_fork')) {
            $this->markTestSkipped('pcntl is not available');
        }
        $path = $this->areaPath();
        [$rc, $out, $err] = $this->runPhp($this->workerScript("new Storage(['area' => getenv('TEST_AREA')])"), env: ['TEST_AREA' => $path], timeout: 120);
        $this->assertSame(0, $rc, $err);
        $this->assertSame("failed=0\n", $out, $err);
        $this->assertExact((new Storage(['area' => $path]))->render());
    }

    public function testSeparateProcessesOnOneAreaFileAreExact(): void
    {
        // Unrelated PHP processes (proc_open, no fork), all at once.
        $path = $this->areaPath();
        $n = self::ITERATIONS;
        $script = $this->dir . '/worker.php';
        $autoload = var_export(\dirname(__DIR__) . '/autoload.php', true);
        file_put_contents($script, <<<PHP
            <?php
            require {$autoload};
            \$r = new \\Prometheus\\CollectorRegistry(new \\Promshm\\Storage(['area' => getenv('TEST_AREA')]), false);
            \$c = \$r->getOrRegisterCounter('app', 'jobs_total', 'Jobs.', ['parity']);
            \$h = \$r->getOrRegisterHistogram('app', 'job_seconds', 'Durations.', [], [0.25, 0.5]);
            \$s = \$r->getOrRegisterSummary('app', 'job_bytes', 'Sizes.');
            \$r->getOrRegisterGauge('app', 'workers_started', 'Workers.')->inc();
            for (\$i = 0; \$i < {$n}; \$i++) {
                \$c->inc([\$i % 2 ? 'odd' : 'even']);
                \$h->observe((\$i % 10) / 10);
                \$s->observe(1);
            }
            PHP);
        $procs = [];
        for ($w = 0; $w < self::WORKERS; $w++) {
            $procs[] = proc_open([PHP_BINARY, '-d', 'ffi.enable=1', $script], [1 => ['file', '/dev/null', 'w'], 2 => ['file', "{$this->dir}/worker-{$w}.err", 'w']], $pipes, null, getenv() + ['TEST_AREA' => $path]);
        }
        $deadline = microtime(true) + 120;
        foreach ($procs as $w => $p) {
            while (($st = proc_get_status($p))['running'] && microtime(true) < $deadline) {
                usleep(10000);
            }
            if ($st['running']) {
                proc_terminate($p, 9);
            }
            $this->assertSame(0, $st['exitcode'], (string) @file_get_contents("{$this->dir}/worker-{$w}.err"));
            proc_close($p);
        }
        $this->assertExact((new Storage(['area' => $path]))->render());
    }

    public function testForkedWorkersFindTheZeroConfigAreaOfTheirParent(): void
    {
        if (!\function_exists('pcntl_fork')) {
            $this->markTestSkipped('pcntl is not available');
        }
        $script = $this->workerScript('new Storage()') . "\necho \\Promshm\\AreaLocator::defaultPath(), \"\\n\", getmypid(), \"\\n\";";
        [$rc, $out, $err] = $this->runPhp($script, env: ['PROMSHM_DIR' => $this->dir, 'PROMSHM_AREA' => null], timeout: 120);
        $this->assertSame(0, $rc, $err);
        [$failed, $path, $pid] = explode("\n", trim($out));
        $this->assertSame('failed=0', $failed, $err);
        $this->assertSame($this->dir, \dirname($path), 'PROMSHM_DIR is private to this user: used as is');
        $this->assertMatchesRegularExpression('/^promshm-' . posix_geteuid() . "-[0-9a-f]+-{$pid}-\\d+\\.area$/", basename($path), 'keyed on the parent (the root)');
        $this->assertExact((new Storage(['area' => $path]))->render());
    }
}
