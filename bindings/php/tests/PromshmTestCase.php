<?php

declare(strict_types=1);

namespace Promshm\Tests;

use PHPUnit\Framework\TestCase;
use Prometheus\CollectorRegistry;
use Promshm\Storage;

/** A private temporary directory per test, areas in it, and child PHP processes. */
abstract class PromshmTestCase extends TestCase
{
    protected string $dir;

    protected function setUp(): void
    {
        $this->dir = sys_get_temp_dir() . '/promshm-php-test-' . getmypid() . '-' . bin2hex(random_bytes(4));
        mkdir($this->dir, 0700);
    }

    protected function tearDown(): void
    {
        $this->rmTree($this->dir);
    }

    private function rmTree(string $path): void
    {
        if (is_link($path) || is_file($path)) {
            @unlink($path);
            return;
        }
        if (is_dir($path)) {
            foreach (scandir($path) ?: [] as $n) {
                if ($n !== '.' && $n !== '..') {
                    $this->rmTree("{$path}/{$n}");
                }
            }
            @rmdir($path);
        }
    }

    protected function areaPath(string $name = 'test.area'): string
    {
        return "{$this->dir}/{$name}";
    }

    protected function registry(?string $area = null, array $options = []): CollectorRegistry
    {
        return new CollectorRegistry(new Storage(['area' => $area ?? $this->areaPath()] + $options), false);
    }

    /**
     * Run `$code` (PHP, without the opening tag) in a new PHP CLI process
     * with the package loaded; returns [exit code, stdout, stderr].
     *
     * @param string[] $ini extra -d settings
     * @return array{0: int, 1: string, 2: string}
     */
    protected function runPhp(string $code, array $ini = ['ffi.enable=1'], array $env = [], int $timeout = 30): array
    {
        $script = $this->dir . '/child-' . bin2hex(random_bytes(4)) . '.php';
        $autoload = var_export(\dirname(__DIR__) . '/autoload.php', true);
        file_put_contents($script, "<?php\ndeclare(strict_types=1);\nrequire {$autoload};\n{$code}\n");
        $cmd = [PHP_BINARY, '-n'];
        foreach ($this->baseIni() as $d) {
            $cmd[] = '-d';
            $cmd[] = $d;
        }
        foreach ($ini as $d) {
            $cmd[] = '-d';
            $cmd[] = $d;
        }
        $cmd[] = $script;
        $fullEnv = getenv() + [];
        foreach ($env as $k => $v) {
            if ($v === null) {
                unset($fullEnv[$k]);
            } else {
                $fullEnv[$k] = $v;
            }
        }
        $proc = proc_open($cmd, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, $fullEnv);
        $this->assertIsResource($proc);
        stream_set_blocking($pipes[1], false);
        stream_set_blocking($pipes[2], false);
        $out = $err = '';
        $deadline = microtime(true) + $timeout;
        while (true) {
            $out .= stream_get_contents($pipes[1]);
            $err .= stream_get_contents($pipes[2]);
            $st = proc_get_status($proc);
            if (!$st['running']) {
                break;
            }
            if (microtime(true) > $deadline) {
                proc_terminate($proc, 9);
                $this->fail("child PHP timed out after {$timeout}s: {$err}");
            }
            usleep(10000);
        }
        $out .= stream_get_contents($pipes[1]);
        $err .= stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        proc_close($proc);
        return [$st['exitcode'], $out, $err];
    }

    /** The extension settings of this PHP (the child runs with -n, no php.ini). @return string[] */
    private function baseIni(): array
    {
        $d = [];
        $extDir = (string) ini_get('extension_dir');
        foreach (['ffi', 'posix', 'pcntl'] as $ext) {
            if (\extension_loaded($ext) && is_file("{$extDir}/{$ext}.so")) {
                $d[] = "extension={$ext}";
            }
        }
        return $d;
    }

    /** `promtool check metrics` on `$text`: [ok, output]. */
    protected function promtool(string $text): array
    {
        $proc = proc_open(['promtool', 'check', 'metrics'], [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
        $this->assertIsResource($proc);
        fwrite($pipes[0], $text);
        fclose($pipes[0]);
        $out = stream_get_contents($pipes[1]) . stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        return [proc_close($proc) === 0, $out];
    }

    /** The value of one sample line of `$text` (null if absent). */
    protected static function sampleValue(string $text, string $series): ?float
    {
        foreach (explode("\n", $text) as $line) {
            if (str_starts_with($line, $series . ' ')) {
                return (float) substr($line, \strlen($series) + 1);
            }
        }
        return null;
    }
}
