<?php

declare(strict_types=1);

namespace Promshm;

use Promshm\Exception\IoException;
use Promshm\Native\C;

/**
 * Where the shared area of this process lives (zero configuration).
 *
 * 1. An explicit path: the `area` option of Storage, else the environment
 *    variable PROMSHM_AREA (under php-fpm: `env[PROMSHM_AREA] = /path` in the
 *    pool config), else the ini setting `promshm.area` (php.ini or `-d`).
 * 2. Otherwise the area of the *root* process: under php-fpm (SAPI
 *    fpm-fcgi) the pool's master, the parent of every child of the pool
 *    (checked: its command line is "php-fpm: master process"), and the
 *    pool's name (the child's title "php-fpm: pool NAME"); on the CLI the
 *    topmost ancestor running the same executable with the same command line
 *    (a pcntl_fork()ed child finds its parent). The file is
 *    `promshm-<uid>-<boot>-<root pid>-<root start time>[-<pool>].area`, in a
 *    directory private to the effective user (as the Python binding does):
 *    $PROMSHM_DIR or $XDG_RUNTIME_DIR if this user owns it and nobody else
 *    may write it, else `promshm-<uid>` (0700, owner checked) in it, in
 *    /dev/shm, in the temporary directory or in ~/.cache.
 *
 * Children of one master thus share one area across pm.max_requests
 * recycling and a kill -9 of a child; another pool (another name, or the
 * same name under another master) or another user never finds it.
 */
final class AreaLocator
{
    private const NAME_RE = '/^promshm-(\d+)-([0-9a-f]+)-(\d+)-(\d+)(-[A-Za-z0-9_.-]+)?\.area$/';

    /** The explicitly configured path, or null. */
    public static function configured(): ?string
    {
        $env = getenv('PROMSHM_AREA');
        if (\is_string($env) && $env !== '') {
            return $env;
        }
        $ini = get_cfg_var('promshm.area');
        if (\is_string($ini) && $ini !== '') {
            return $ini;
        }
        return null;
    }

    /** What defaultPath() depends on besides the process tree (for caching it per process). */
    public static function inputs(): string
    {
        return implode("\0", [self::uid(), \PHP_SAPI, getenv('PROMSHM_DIR'), getenv('XDG_RUNTIME_DIR'), getenv('HOME'), sys_get_temp_dir()]);
    }

    /** The path of the zero-configuration area (see the class comment). */
    public static function defaultPath(): string
    {
        [$root, $pool] = self::root();
        $start = self::startTime($root) ?? 0;
        $name = 'promshm-' . self::uid() . '-' . self::bootId() . "-{$root}-{$start}" . ($pool === null ? '' : "-{$pool}") . '.area';
        $dir = self::runtimeDir();
        $path = $dir . '/' . $name;
        if (!file_exists($path)) {
            self::sweep($dir);
        }
        return $path;
    }

    /**
     * The root process and the FPM pool name (null outside php-fpm).
     *
     * @return array{0: int, 1: ?string}
     */
    public static function root(): array
    {
        $me = getmypid();
        if (\PHP_SAPI === 'fpm-fcgi') {
            $ppid = self::ppid($me);
            $title = self::cmdline($me) ?? '';
            $master = $ppid > 0 ? (self::cmdline($ppid) ?? '') : '';
            if (str_starts_with($master, 'php-fpm: master process')) {
                $pool = null;
                if (preg_match('/^php-fpm: pool ([^\s\0]+)/', $title, $m)) {
                    $pool = preg_match('/^[A-Za-z0-9_.-]{1,64}$/', $m[1]) ? $m[1] : substr(hash('sha256', $m[1]), 0, 16);
                }
                return [$ppid, $pool ?? 'fpm'];
            }
            return [$me, 'fpm'];
        }
        $pid = $me;
        for ($i = 0; $i < 64; $i++) {
            $ppid = self::ppid($pid);
            if ($ppid <= 0 || !self::sameProgram($pid, $ppid)) {
                break;
            }
            $pid = $ppid;
        }
        return [$pid, null];
    }

    /** The directory of zero-configuration areas, private to this user. */
    public static function runtimeDir(): string
    {
        $refused = [];
        $home = getenv('HOME');
        $candidates = [
            [getenv('PROMSHM_DIR'), true],
            [getenv('XDG_RUNTIME_DIR'), true],
            ['/dev/shm', false],
            [sys_get_temp_dir(), false],
            [\is_string($home) && $home !== '' ? $home . '/.cache' : false, false],
        ];
        foreach ($candidates as [$cand, $direct]) {
            if (!\is_string($cand) || $cand === '' || !is_dir($cand) || !is_writable($cand)) {
                continue;
            }
            if ($direct && self::refusal($cand, false) === null) {
                return rtrim($cand, '/') === '' ? '/' : rtrim($cand, '/');
            }
            $dir = rtrim($cand, '/') . '/promshm-' . self::uid();
            if (!is_dir($dir) && !is_link($dir)) {
                $old = umask(0077);
                @mkdir($dir, 0700);
                umask($old);
            }
            $why = self::refusal($dir, true);
            if ($why === null) {
                return $dir;
            }
            $refused[] = "{$dir}: {$why}";
        }
        throw new IoException(
            'no private directory for the zero-config area',
            C::PROMSHM_RESULT_UNSAFE_FILE,
            ($refused === [] ? 'no writable candidate' : implode('; ', $refused)) . ' (set PROMSHM_DIR to a directory of yours, or PROMSHM_AREA to a file)'
        );
    }

    /** Why `$dir` may not hold our areas, or null. */
    private static function refusal(string $dir, bool $private): ?string
    {
        clearstatcache(true, $dir);
        $st = @lstat($dir);
        if ($st === false) {
            return 'it cannot be examined';
        }
        if (($st['mode'] & 0170000) === 0120000) {
            return 'it is a symbolic link';
        }
        if (($st['mode'] & 0170000) !== 0040000) {
            return 'it is not a directory';
        }
        if ($st['uid'] !== self::uid()) {
            return "it is owned by uid {$st['uid']}, not by this process's uid " . self::uid();
        }
        if ($private && ($st['mode'] & 0077) !== 0) {
            if (!@chmod($dir, 0700)) {
                return 'its mode cannot be set to 0700';
            }
        } elseif (!$private && ($st['mode'] & 0022) !== 0) {
            return sprintf('others may write it (mode %04o)', $st['mode'] & 07777);
        }
        return null;
    }

    /** Remove zero-config area files of this user whose root process is gone. */
    private static function sweep(string $dir): void
    {
        $names = @scandir($dir);
        if ($names === false) {
            return;
        }
        $uid = (string) self::uid();
        $boot = self::bootId();
        foreach ($names as $name) {
            if (!preg_match(self::NAME_RE, $name, $m) || $m[1] !== $uid) {
                continue;
            }
            if ($m[2] === $boot && self::startTime((int) $m[3]) === (int) $m[4]) {
                continue; // its root is alive
            }
            @unlink($dir . '/' . $name);
        }
    }

    private static function uid(): int
    {
        return \function_exists('posix_geteuid') ? posix_geteuid() : getmyuid();
    }

    private static function bootId(): string
    {
        $id = @file_get_contents('/proc/sys/kernel/random/boot_id');
        return $id === false ? '0' : substr(str_replace('-', '', trim($id)), 0, 8);
    }

    /** @return string[]|null fields 3.. of /proc/<pid>/stat */
    private static function stat(int $pid): ?array
    {
        $data = @file_get_contents("/proc/{$pid}/stat");
        if ($data === false) {
            return null;
        }
        $close = strrpos($data, ')');
        if ($close === false) {
            return null;
        }
        return preg_split('/\s+/', trim(substr($data, $close + 2))) ?: null;
    }

    /** Start time of a process (clock ticks since boot), or null. */
    public static function startTime(int $pid): ?int
    {
        $st = self::stat($pid);
        return $st !== null && \count($st) >= 20 ? (int) $st[19] : null;
    }

    private static function ppid(int $pid): int
    {
        $st = self::stat($pid);
        return $st !== null && \count($st) >= 2 ? (int) $st[1] : 0;
    }

    private static function cmdline(int $pid): ?string
    {
        $c = @file_get_contents("/proc/{$pid}/cmdline");
        return $c === false ? null : $c;
    }

    private static function sameProgram(int $child, int $parent): bool
    {
        $ce = @readlink("/proc/{$child}/exe");
        $pe = @readlink("/proc/{$parent}/exe");
        if ($ce === false || $pe === false || $ce !== $pe) {
            return false;
        }
        $cc = self::cmdline($child);
        return $cc !== null && $cc === self::cmdline($parent);
    }
}
