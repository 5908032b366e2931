<?php

declare(strict_types=1);

namespace Promshm\Tests;

use Promshm\Native\Library;
use Promshm\Storage;

/** The per-process handle cache: reused in the process, never by another one. */
final class PersistentTest extends PromshmTestCase
{
    private static function address(Storage $st): int
    {
        return Library::ffi()->cast('uintptr_t', $st->area()->handle())->cdata;
    }

    public function testHandlesAreKeptForTheProcess(): void
    {
        $path = $this->areaPath();
        $a = new Storage(['area' => $path]);
        $first = self::address($a);
        $a->counter('kept', 'K.')->counterAdd([], 1.0);
        $a->close(); // the end of a request: the kept handles stay valid
        $b = new Storage(['area' => $path]);
        $this->assertSame($first, self::address($b), 'the next request reuses the mapping');
        $b->counter('kept', 'K.')->counterAdd([], 2.0);
        $this->assertSame(3.0, self::sampleValue($b->render(), 'kept_total'));
        $c = new Storage(['area' => $path, 'persistent' => false]);
        $this->assertNotSame($first, self::address($c), 'persistent => false opens its own');
        $this->assertSame(3.0, self::sampleValue($c->render(), 'kept_total'));
    }

    public function testAnotherProcessNeverUsesThem(): void
    {
        $path = $this->areaPath();
        (new Storage(['area' => $path]))->counter('n', 'N.')->counterAdd([], 1.0);
        // Every variable of the cache, as a child started with exec inherits them.
        $env = array_filter(getenv(), static fn (string $k): bool => str_starts_with($k, 'PROMSHM_PHP_HANDLES_'), ARRAY_FILTER_USE_KEY);
        $this->assertNotEmpty($env, 'the cache variable is in the process environment');
        $code = '$st = new \Promshm\Storage(["area" => getenv("TEST_AREA")]); $st->counter("n", "N.")->counterAdd([], 4.0); echo \Promshm\Native\Library::ffi()->cast("uintptr_t", $st->area()->handle())->cdata, "\n";';
        [$rc, $out, $err] = $this->runPhp($code, env: $env + ['TEST_AREA' => $path]);
        $this->assertSame(0, $rc, $err);
        $this->assertSame(5.0, self::sampleValue((new Storage(['area' => $path]))->render(), 'n_total'));
        // A forged value naming this child's pid with a wrong start time is ignored too.
        $forged = [array_key_first($env) => '1:1:12345:12345:' . $path];
        [$rc, , $err] = $this->runPhp($code, env: $forged + ['TEST_AREA' => $path]);
        $this->assertSame(0, $rc, $err);
        $this->assertSame(9.0, self::sampleValue((new Storage(['area' => $path]))->render(), 'n_total'));
    }

    public function testProgramExecutedInPlaceOpensItsOwn(): void
    {
        if (!\function_exists('pcntl_exec')) {
            $this->markTestSkipped('pcntl is not available');
        }
        // pcntl_exec() keeps the pid (and the start time): only the per-exec identity tells.
        $second = "{$this->dir}/second.php";
        $autoload = var_export(\dirname(__DIR__) . '/autoload.php', true);
        file_put_contents($second, "<?php\nrequire {$autoload};\n\$st = new \\Promshm\\Storage(['area' => getenv('TEST_AREA')]);\n\$st->counter('e', 'E.')->counterAdd([], 2.0);\necho getmypid(), ' ', \$st->area()->address(), \"\\n\";\n");
        $ext = (string) ini_get('extension_dir');
        $args = ['-n', '-d', 'ffi.enable=1'];
        foreach (['ffi', 'posix'] as $e) {
            if (is_file("{$ext}/{$e}.so")) {
                array_push($args, '-d', "extension={$e}");
            }
        }
        $args[] = $second;
        $code = '$st = new \Promshm\Storage(["area" => getenv("TEST_AREA")]); $st->counter("e", "E.")->counterAdd([], 1.0); \Promshm\Storage::flush();'
            . ' echo getmypid(), " ", $st->area()->address(), "\n"; pcntl_exec(' . var_export(PHP_BINARY, true) . ', ' . var_export($args, true) . ');';
        [$rc, $out, $err] = $this->runPhp($code, env: ['TEST_AREA' => $this->areaPath()]);
        $this->assertSame(0, $rc, $out . $err);
        $lines = explode("\n", trim($out));
        $this->assertCount(2, $lines, $out . $err);
        $this->assertSame(explode(' ', $lines[0])[0], explode(' ', $lines[1])[0], 'the same pid after pcntl_exec');
        $this->assertSame(3.0, self::sampleValue((new Storage(['area' => $this->areaPath()]))->render(), 'e_total'));
    }

    public function testForkedChildOpensItsOwn(): void
    {
        if (!\function_exists('pcntl_fork')) {
            $this->markTestSkipped('pcntl is not available');
        }
        $code = <<<'PHP'
            $path = getenv('TEST_AREA');
            $parent = new \Promshm\Storage(['area' => $path]);
            $parent->counter('f', 'F.')->counterAdd([], 1.0);
            $addr = \Promshm\Native\Library::ffi()->cast('uintptr_t', $parent->area()->handle())->cdata;
            $pid = pcntl_fork();
            if ($pid === 0) {
                $st = new \Promshm\Storage(['area' => $path]);
                $st->counter('f', 'F.')->counterAdd([], 10.0);
                $mine = \Promshm\Native\Library::ffi()->cast('uintptr_t', $st->area()->handle())->cdata;
                exit($mine === $addr ? 3 : 0);
            }
            pcntl_waitpid($pid, $status);
            echo pcntl_wexitstatus($status), "\n";
            PHP;
        [$rc, $out, $err] = $this->runPhp($code, env: ['TEST_AREA' => $this->areaPath()]);
        $this->assertSame(0, $rc, $err);
        $this->assertSame("0\n", $out, 'the child did not take its parent\'s cached handle: ' . $err);
        $this->assertSame(11.0, self::sampleValue((new Storage(['area' => $this->areaPath()]))->render(), 'f_total'));
    }
}
