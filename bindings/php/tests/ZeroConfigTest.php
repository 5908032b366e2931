<?php

declare(strict_types=1);

namespace Promshm\Tests;

use Promshm\AreaLocator;
use Promshm\Storage;

/** The zero-configuration area: private directory, explicit settings, stale files. */
final class ZeroConfigTest extends PromshmTestCase
{
    /** @var array<string, string|false> */
    private array $savedEnv = [];

    private function setEnv(string $k, ?string $v): void
    {
        if (!\array_key_exists($k, $this->savedEnv)) {
            $this->savedEnv[$k] = getenv($k);
        }
        putenv($v === null ? $k : "{$k}={$v}");
    }

    protected function tearDown(): void
    {
        foreach ($this->savedEnv as $k => $v) {
            putenv($v === false ? $k : "{$k}={$v}");
        }
        parent::tearDown();
    }

    public function testPrivateDirectoryIsUsedAsIs(): void
    {
        $this->setEnv('PROMSHM_DIR', $this->dir);
        $this->assertSame($this->dir, AreaLocator::runtimeDir());
        $path = AreaLocator::defaultPath();
        $this->assertSame($this->dir, \dirname($path));
        [$root] = AreaLocator::root();
        $this->assertStringContainsString("-{$root}-" . AreaLocator::startTime($root) . '.area', basename($path));
    }

    public function testSharedDirectoryGetsAPrivateSubdirectory(): void
    {
        $shared = "{$this->dir}/shared";
        mkdir($shared);
        chmod($shared, 01777);
        $this->setEnv('PROMSHM_DIR', $shared);
        $dir = AreaLocator::runtimeDir();
        $this->assertSame("{$shared}/promshm-" . posix_geteuid(), $dir);
        clearstatcache();
        $this->assertSame(0700, fileperms($dir) & 0777);
        // A loosened private directory is made 0700 again.
        chmod($dir, 0755);
        $this->assertSame($dir, AreaLocator::runtimeDir());
        clearstatcache();
        $this->assertSame(0700, fileperms($dir) & 0777);
    }

    public function testPlantedSymlinkIsRefused(): void
    {
        $shared = "{$this->dir}/shared";
        mkdir($shared);
        chmod($shared, 01777);
        $elsewhere = "{$this->dir}/elsewhere";
        mkdir($elsewhere, 0700);
        symlink($elsewhere, "{$shared}/promshm-" . posix_geteuid());
        $this->setEnv('PROMSHM_DIR', $shared);
        $dir = AreaLocator::runtimeDir();
        $this->assertStringStartsNotWith($shared, $dir, 'another candidate is used, never the planted link');
        $this->assertStringStartsNotWith($elsewhere, $dir);
    }

    public function testStorageUsesTheZeroConfigAreaAndFollowsItsInputs(): void
    {
        $this->setEnv('PROMSHM_AREA', null);
        $one = "{$this->dir}/one";
        $two = "{$this->dir}/two";
        mkdir($one, 0700);
        mkdir($two, 0700);
        $this->setEnv('PROMSHM_DIR', $one);
        $a = new Storage();
        $this->assertSame(AreaLocator::defaultPath(), $a->area()->path);
        $this->assertSame($one, \dirname($a->area()->path));
        $this->setEnv('PROMSHM_DIR', $two);
        $this->assertSame($two, \dirname((new Storage())->area()->path), 'the per-process cache is keyed on PROMSHM_DIR');
        $this->setEnv('PROMSHM_DIR', $one);
        $this->assertSame($a->area()->path, (new Storage())->area()->path);
    }

    public function testExplicitAreaFromTheEnvironment(): void
    {
        $path = $this->areaPath('explicit.area');
        $this->setEnv('PROMSHM_AREA', $path);
        $st = new Storage();
        $st->counter('x', 'X.')->counterAdd([], 2.0);
        $this->assertSame($path, $st->area()->path);
        $this->assertSame(2.0, self::sampleValue((new Storage(['area' => $path]))->render(), 'x_total'));
    }

    public function testExplicitAreaFromIni(): void
    {
        $path = $this->areaPath('ini.area');
        [$rc, $out, $err] = $this->runPhp('echo \Promshm\AreaLocator::configured(), "\n";', ['ffi.enable=1', "promshm.area={$path}"], ['PROMSHM_AREA' => null]);
        $this->assertSame(0, $rc, $err);
        $this->assertSame("{$path}\n", $out);
    }

    public function testStaleAreasOfDeadRootsAreRemoved(): void
    {
        $this->setEnv('PROMSHM_DIR', $this->dir);
        $uid = posix_geteuid();
        $boot = substr(str_replace('-', '', trim((string) file_get_contents('/proc/sys/kernel/random/boot_id'))), 0, 8);
        $stale = "{$this->dir}/promshm-{$uid}-{$boot}-999999999-1-www.area";
        $otherBoot = "{$this->dir}/promshm-{$uid}-00000000-1-1.area";
        $live = "{$this->dir}/promshm-{$uid}-{$boot}-1-" . AreaLocator::startTime(1) . '.area';
        $foreign = "{$this->dir}/promshm-" . ($uid + 1) . "-{$boot}-999999999-1.area";
        foreach ([$stale, $otherBoot, $live, $foreign] as $f) {
            touch($f);
        }
        AreaLocator::defaultPath();
        clearstatcache();
        $this->assertFileDoesNotExist($stale);
        $this->assertFileDoesNotExist($otherBoot);
        $this->assertFileExists($live, 'its root (pid 1) is alive');
        $this->assertFileExists($foreign, "another user's file is left alone");
    }
}
