<?php

declare(strict_types=1);

namespace Promshm\Tests;

use Promshm\Native\Library;
use Promshm\Storage;

/**
 * Under a real php-fpm master (ffi.enable=preload, the declarations loaded
 * by ffi.preload, the classes by opcache.preload, no PROMSHM_AREA, clear_env): the children of one pool find
 * one area by themselves, also after pm.max_requests recycling, and their
 * totals are exact; another pool of the
 * same user, and a pool of another user, each get their own.
 */
final class FpmTest extends PromshmTestCase
{
    /** @var resource|null */
    private $fpm = null;

    protected function tearDown(): void
    {
        if (\is_resource($this->fpm)) {
            $st = proc_get_status($this->fpm);
            if ($st['running']) {
                posix_kill($st['pid'], SIGTERM);
                $deadline = microtime(true) + 10;
                while (proc_get_status($this->fpm)['running'] && microtime(true) < $deadline) {
                    usleep(20000);
                }
                if (proc_get_status($this->fpm)['running']) {
                    posix_kill($st['pid'], SIGKILL);
                }
            }
            proc_close($this->fpm);
        }
        parent::tearDown();
    }

    private function fpmBinary(): ?string
    {
        foreach (['/usr/sbin/php-fpm' . PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION, '/usr/sbin/php-fpm'] as $b) {
            if (is_executable($b)) {
                return $b;
            }
        }
        return null;
    }

    public function testPoolsFindTheirOwnAreaAndCountExactly(): void
    {
        $fpm = $this->fpmBinary();
        if ($fpm === null || posix_geteuid() !== 0) {
            $this->markTestSkipped('needs php-fpm and root (pools of two users)');
        }
        chmod($this->dir, 0755);
        $shared = "{$this->dir}/shared";
        mkdir($shared);
        chmod($shared, 01777); // like /tmp: each user gets a private promshm-<uid> inside
        $header = "{$this->dir}/promshm.h";
        file_put_contents($header, Library::scopedDeclarations((string) getenv('PROMSHM_LIBRARY')));
        $autoload = var_export(\dirname(__DIR__) . '/autoload.php', true);
        $script = "{$this->dir}/app.php";
        file_put_contents($script, <<<PHP
            <?php
            require {$autoload};
            \$st = new \\Promshm\\Storage();
            \$r = new \\Prometheus\\CollectorRegistry(\$st, false);
            \$c = \$r->getOrRegisterCounter('app', 'requests_total', 'Requests.', ['pool']);
            if ((\$_GET['op'] ?? '') === 'render') {
                echo \$st->render();
                return;
            }
            \$c->inc([\$_GET['pool'] ?? '']);
            echo json_encode(['path' => \$st->area()->path, 'pid' => getmypid(), 'mode' => \\Promshm\\Native\\Library::mode(), 'addr' => \$st->area()->address(), 'ffi' => ini_get('ffi.enable')]), "\\n";
            PHP);
        $pools = ['a1' => 'www-data', 'a2' => 'www-data', 'b' => 'nobody'];
        $conf = "[global]\nerror_log = {$this->dir}/fpm.log\ndaemonize = no\n";
        foreach ($pools as $pool => $user) {
            // Pool a1's children are recycled every 4 requests (pm.max_requests).
            $conf .= "[{$pool}]\nuser = {$user}\ngroup = nogroup\nlisten = {$this->dir}/{$pool}.sock\nlisten.mode = 0666\npm = static\npm.max_children = 3\n"
                . 'pm.max_requests = ' . ($pool === 'a1' ? 4 : 0) . "\n"
                . "clear_env = yes\nenv[PROMSHM_DIR] = {$shared}\ncatch_workers_output = yes\n";
        }
        file_put_contents("{$this->dir}/fpm.conf", $conf);
        $ext = (string) ini_get('extension_dir');
        $cmd = [$fpm, '-n', '-F', '-R', '-y', "{$this->dir}/fpm.conf", '-d', 'extension=ffi', '-d', 'ffi.enable=preload', '-d', "ffi.preload={$header}",
            '-d', 'zend_extension=opcache', '-d', 'opcache.enable=1', '-d', 'opcache.preload=' . \dirname(__DIR__) . '/preload.php', '-d', 'opcache.preload_user=root'];
        if (is_file("{$ext}/posix.so")) {
            array_push($cmd, '-d', 'extension=posix');
        }
        $this->fpm = proc_open($cmd, [1 => ['file', "{$this->dir}/fpm.out", 'w'], 2 => ['file', "{$this->dir}/fpm.out", 'a']], $pipes);
        $this->assertIsResource($this->fpm);
        $deadline = microtime(true) + 15;
        while (microtime(true) < $deadline && !(file_exists("{$this->dir}/a1.sock") && file_exists("{$this->dir}/a2.sock") && file_exists("{$this->dir}/b.sock"))) {
            usleep(50000);
        }
        $master = proc_get_status($this->fpm)['pid'];
        $log = fn (): string => @file_get_contents("{$this->dir}/fpm.log") . @file_get_contents("{$this->dir}/fpm.out");

        $seen = [];
        $n = ['a1' => 30, 'a2' => 12, 'b' => 9];
        foreach ($n as $pool => $count) {
            for ($i = 0; $i < $count; $i++) {
                $raw = FastCgi::request("{$this->dir}/{$pool}.sock", $script, ['pool' => $pool]);
                $reply = json_decode($raw, true);
                $this->assertIsArray($reply, $raw . "\n" . $log());
                $this->assertSame('scope', $reply['mode'], 'ffi.enable=preload uses the ffi.preload scope');
                $this->assertSame('preload', $reply['ffi']);
                $seen[$pool]['paths'][$reply['path']] = true;
                $seen[$pool]['pids'][$reply['pid']] = true;
                $seen[$pool]['addrs'][$reply['pid']][$reply['addr']] = true;
            }
        }
        foreach ($pools as $pool => $user) {
            $this->assertCount(1, $seen[$pool]['paths'], "every child of pool {$pool} finds one area: " . implode(', ', array_keys($seen[$pool]['paths'])));
            $path = array_key_first($seen[$pool]['paths']);
            $uid = posix_getpwnam($user)['uid'];
            $this->assertSame("{$shared}/promshm-{$uid}", \dirname($path));
            $this->assertMatchesRegularExpression("/^promshm-{$uid}-[0-9a-f]+-{$master}-\\d+-{$pool}\\.area$/", basename($path), 'keyed on the master and the pool');
            $this->assertSame(0700, fileperms(\dirname($path)) & 0777);
            $this->assertSame($uid, fileowner($path));
            $this->assertSame(0600, fileperms($path) & 0777);
            $seen[$pool]['path'] = $path;
        }
        $this->assertGreaterThan(3, \count($seen['a1']['pids']), 'children of a1 were recycled (pm.max_requests) and their successors found the same area');
        $this->assertNotSame($seen['a1']['path'], $seen['a2']['path']);
        // Each child opened the area once and kept it for its later requests.
        foreach ($seen as $pool => $s) {
            foreach ($s['addrs'] as $pid => $addrs) {
                $this->assertCount(1, $addrs, "child {$pid} of {$pool} kept one area handle across its requests");
            }
        }
        // Exact totals, each pool in its own area only.
        foreach ($n as $pool => $count) {
            $text = FastCgi::request("{$this->dir}/{$pool}.sock", $script, ['op' => 'render']);
            foreach ($n as $other => $otherCount) {
                $this->assertSame($other === $pool ? (float) $count : null, self::sampleValue($text, "app_requests_total{pool=\"{$other}\"}"), "pool {$pool}, series {$other}:\n{$text}");
            }
        }
    }
}
