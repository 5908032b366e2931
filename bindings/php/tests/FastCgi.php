<?php

declare(strict_types=1);

namespace Promshm\Tests;

/** A minimal FastCGI client: one request on a Unix socket, bounded in time. */
final class FastCgi
{
    /**
     * Run `$script` in the php-fpm pool listening on `$socket`; returns
     * the response body (the headers are dropped).
     *
     * @param array<string, string> $query
     */
    public static function request(string $socket, string $script, array $query = [], float $timeout = 10.0): string
    {
        $conn = @stream_socket_client("unix://{$socket}", $errno, $errstr, $timeout);
        if ($conn === false) {
            throw new \RuntimeException("connect {$socket}: {$errstr}");
        }
        stream_set_timeout($conn, (int) ceil($timeout));
        $params = [
            'GATEWAY_INTERFACE' => 'FastCGI/1.0',
            'REQUEST_METHOD' => 'GET',
            'SCRIPT_FILENAME' => $script,
            'SCRIPT_NAME' => '/' . basename($script),
            'QUERY_STRING' => http_build_query($query),
            'SERVER_PROTOCOL' => 'HTTP/1.1',
            'REMOTE_ADDR' => '127.0.0.1',
            'SERVER_NAME' => 'localhost',
        ];
        $body = '';
        foreach ($params as $k => $v) {
            $body .= self::len(\strlen($k)) . self::len(\strlen($v)) . $k . $v;
        }
        $id = 1;
        fwrite($conn, self::record(1, $id, pack('nCx5', 1, 0)) . self::record(4, $id, $body) . self::record(4, $id, '') . self::record(5, $id, ''));
        $out = '';
        $deadline = microtime(true) + $timeout;
        while (microtime(true) < $deadline) {
            $head = self::read($conn, 8, $deadline);
            $h = unpack('Cversion/Ctype/nid/nlen/Cpad/x', $head);
            $content = self::read($conn, $h['len'] + $h['pad'], $deadline);
            if ($h['type'] === 6) {
                $out .= substr($content, 0, $h['len']);
            } elseif ($h['type'] === 3) {
                fclose($conn);
                $sep = strpos($out, "\r\n\r\n");
                return $sep === false ? $out : substr($out, $sep + 4);
            }
        }
        fclose($conn);
        throw new \RuntimeException("FastCGI request to {$socket} timed out");
    }

    private static function len(int $n): string
    {
        return $n < 128 ? \chr($n) : pack('N', $n | 0x80000000);
    }

    private static function record(int $type, int $id, string $content): string
    {
        return pack('CCnnCx', 1, $type, $id, \strlen($content), 0) . $content;
    }

    /** @param resource $conn */
    private static function read($conn, int $n, float $deadline): string
    {
        $buf = '';
        while (\strlen($buf) < $n) {
            if (microtime(true) > $deadline) {
                throw new \RuntimeException('FastCGI read timed out');
            }
            $chunk = fread($conn, $n - \strlen($buf));
            if ($chunk === false || ($chunk === '' && feof($conn))) {
                throw new \RuntimeException('FastCGI connection closed early');
            }
            $buf .= $chunk;
        }
        return $buf;
    }
}
