<?php

declare(strict_types=1);

namespace Promshm\Tests;

use Prometheus\Exception\MetricsRegistrationException;
use Promshm\Exception\AreaException;
use Promshm\Exception\Errors;
use Promshm\Exception\InternalException;
use Promshm\Exception\InvalidArgumentException;
use Promshm\Exception\IoException;
use Promshm\Exception\PromshmException;
use Promshm\Exception\RegistryException;
use Promshm\Native\C;
use Promshm\Storage;

/** Bad input gets the exception class of its C error block, with the code and the detail. */
final class BadInputTest extends PromshmTestCase
{
    /**
     * @param callable(): void $fn
     * @param class-string     $class
     */
    private function assertThrowsCode(callable $fn, string $class, int $code, string $detailPart = ''): PromshmException
    {
        try {
            $fn();
        } catch (PromshmException $e) {
            $this->assertInstanceOf($class, $e, $e->getMessage());
            $this->assertSame($code, $e->getCode(), $e->getMessage());
            if ($detailPart !== '') {
                $this->assertStringContainsString($detailPart, $e->getDetail());
            }
            return $e;
        }
        $this->fail("no exception, expected {$class} ({$code})");
    }

    public function testInvalidMetricName(): void
    {
        $r = $this->registry();
        $e = $this->assertThrowsCode(fn () => $r->registerCounter('app', 'bad-name', 'X.'), InvalidArgumentException::class, C::PROMSHM_RESULT_INVALID_METRIC_NAME, 'bad-name');
        $this->assertInstanceOf(\InvalidArgumentException::class, $e, 'PromPHP code catching \InvalidArgumentException still works');
        $this->assertSame('invalid metric name', $e->getResultMessage());
        // A gauge may not end in a suffix the text format gives counters.
        $this->assertThrowsCode(fn () => $r->registerGauge('', 'g_total', 'X.'), InvalidArgumentException::class, C::PROMSHM_RESULT_INVALID_METRIC_NAME);
    }

    public function testInvalidLabelName(): void
    {
        $r = $this->registry();
        $this->assertThrowsCode(fn () => $r->registerCounter('', 'c', 'X.', ['a-b']), InvalidArgumentException::class, C::PROMSHM_RESULT_INVALID_LABEL_NAME, 'a-b');
    }

    public function testReservedAndDuplicateLabels(): void
    {
        $r = $this->registry();
        $this->assertThrowsCode(fn () => $r->registerHistogram('', 'h', 'X.', ['le']), InvalidArgumentException::class, C::PROMSHM_RESULT_RESERVED_LABEL);
        $this->assertThrowsCode(fn () => $r->registerSummary('', 's', 'X.', ['quantile']), InvalidArgumentException::class, C::PROMSHM_RESULT_RESERVED_LABEL);
        $this->assertThrowsCode(fn () => $r->registerCounter('', 'c', 'X.', ['a', 'a']), InvalidArgumentException::class, C::PROMSHM_RESULT_DUPLICATE_LABEL);
    }

    public function testWrongLabelCount(): void
    {
        $c = $this->registry()->registerCounter('', 'c', 'X.', ['a', 'b']);
        $this->assertThrowsCode(fn () => $c->inc(['only-one']), InvalidArgumentException::class, C::PROMSHM_RESULT_LABEL_COUNT);
        $this->assertThrowsCode(fn () => $c->inc(['x', 'y', 'z']), InvalidArgumentException::class, C::PROMSHM_RESULT_LABEL_COUNT);
        $this->assertThrowsCode(fn () => $c->inc(["a\0b", 'c']), InvalidArgumentException::class, C::PROMSHM_RESULT_INVALID_ARGUMENT, 'NUL');
    }

    public function testBadBucketsAndQuantiles(): void
    {
        $r = $this->registry();
        $this->assertThrowsCode(fn () => $r->registerHistogram('', 'h1', 'X.', [], [1, 0.5]), InvalidArgumentException::class, C::PROMSHM_RESULT_INVALID_BUCKETS);
        $this->assertThrowsCode(fn () => $r->registerHistogram('', 'h2', 'X.', [], []), InvalidArgumentException::class, C::PROMSHM_RESULT_INVALID_BUCKETS);
        $this->assertThrowsCode(fn () => $r->registerSummary('', 's1', 'X.', [], 600, [1.5]), InvalidArgumentException::class, C::PROMSHM_RESULT_INVALID_SUMMARY);
        $this->assertThrowsCode(fn () => $r->registerSummary('', 's2', 'X.', [], 0), InvalidArgumentException::class, C::PROMSHM_RESULT_INVALID_ARGUMENT);
    }

    public function testBadValues(): void
    {
        $r = $this->registry();
        $c = $r->registerCounter('', 'c', 'X.');
        $this->assertThrowsCode(fn () => $c->incBy(-1), InvalidArgumentException::class, C::PROMSHM_RESULT_INVALID_VALUE);
        $h = $r->registerHistogram('', 'h', 'X.');
        $this->assertThrowsCode(fn () => $h->observe(NAN), InvalidArgumentException::class, C::PROMSHM_RESULT_INVALID_VALUE);
        $s = $r->registerSummary('', 's', 'X.');
        $this->assertThrowsCode(fn () => $s->observe(NAN), InvalidArgumentException::class, C::PROMSHM_RESULT_INVALID_VALUE);
        // Nothing was recorded by the refused updates.
        $text = (new Storage(['area' => $this->areaPath()]))->render();
        $this->assertSame(0.0, self::sampleValue($text, 'c_total'));
        $this->assertSame(0.0, self::sampleValue($text, 'h_count'));
    }

    public function testShapeMismatchIsARegistrationError(): void
    {
        $path = $this->areaPath();
        $this->registry($path)->registerCounter('', 'c', 'X.', ['a']);
        // Another process (here another registry on the area) with other labels.
        $e = $this->assertThrowsCode(fn () => $this->registry($path)->registerCounter('', 'c', 'X.', ['b']), RegistryException::class, C::PROMSHM_RESULT_SHAPE_MISMATCH);
        $this->assertInstanceOf(MetricsRegistrationException::class, $e);
        $this->assertThrowsCode(fn () => $this->registry($path)->registerGauge('', 'c', 'X.', ['a']), RegistryException::class, C::PROMSHM_RESULT_SHAPE_MISMATCH);
    }

    public function testNameTaken(): void
    {
        $r = $this->registry();
        $r->registerHistogram('', 'h', 'X.');
        $this->assertThrowsCode(fn () => $r->registerCounter('', 'h_bucket', 'X.'), RegistryException::class, C::PROMSHM_RESULT_NAME_TAKEN);
    }

    public function testIoErrors(): void
    {
        $this->assertThrowsCode(fn () => $this->registry("{$this->dir}/missing/dir/a.area")->registerCounter('', 'c', 'X.'), IoException::class, C::PROMSHM_RESULT_NOT_FOUND);
        $target = $this->areaPath('real.area');
        touch($target);
        symlink($target, $this->areaPath('link.area'));
        $this->assertThrowsCode(fn () => $this->registry($this->areaPath('link.area'))->registerCounter('', 'c', 'X.'), IoException::class, C::PROMSHM_RESULT_UNSAFE_FILE);
        $open = $this->areaPath('open.area');
        touch($open);
        chmod($open, 0666);
        $this->assertThrowsCode(fn () => $this->registry($open)->registerCounter('', 'c', 'X.'), IoException::class, C::PROMSHM_RESULT_UNSAFE_FILE, 'writ');
    }

    public function testAreaErrors(): void
    {
        // A file of this user that does not hold an area is refused as such (3xx).
        $garbage = $this->areaPath('garbage.area');
        file_put_contents($garbage, str_repeat("\x5a", 65536));
        chmod($garbage, 0600);
        try {
            $this->registry($garbage)->registerCounter('', 'c', 'X.');
            $this->fail('a garbage file was accepted as an area');
        } catch (AreaException $e) {
            $this->assertContains($e->getCode(), [C::PROMSHM_RESULT_INCOMPATIBLE_AREA, C::PROMSHM_RESULT_CORRUPT_AREA], $e->getMessage());
        }
        $this->assertSame(str_repeat("\x5a", 65536), file_get_contents($garbage), 'and left untouched');
    }

    public function testBlocksMapToClasses(): void
    {
        $this->assertInstanceOf(InvalidArgumentException::class, Errors::forCode(101, 'm'));
        $this->assertInstanceOf(IoException::class, Errors::forCode(204, 'm'));
        $this->assertInstanceOf(AreaException::class, Errors::forCode(305, 'm'));
        $this->assertInstanceOf(RegistryException::class, Errors::forCode(401, 'm'));
        $this->assertInstanceOf(InternalException::class, Errors::forCode(900, 'm'));
    }

    public function testUnknownOptions(): void
    {
        $this->assertThrowsCode(fn () => new Storage(['aera' => 'x']), InvalidArgumentException::class, C::PROMSHM_RESULT_INVALID_ARGUMENT, 'aera');
        $this->assertThrowsCode(fn () => new Storage(['gaugeMode' => 'avg']), InvalidArgumentException::class, C::PROMSHM_RESULT_INVALID_ARGUMENT, 'avg');
    }
}
