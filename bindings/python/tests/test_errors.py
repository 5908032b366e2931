"""Bad input raises a clear exception of the right class, never a crash."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import promshm
from promshm import errors
from promshm import _bindings as B


def test_hierarchy():
    assert issubclass(errors.InvalidArgumentError, (promshm.PromshmError, ValueError))
    assert issubclass(errors.LabelError, ValueError)
    assert issubclass(errors.WrongTypeError, TypeError)
    assert issubclass(errors.ShapeMismatchError, (errors.RegistryError, ValueError))
    assert issubclass(errors.AreaFullError, errors.AreaError)
    assert issubclass(errors.PromshmIOError, OSError)
    assert issubclass(errors.AreaNotFoundError, FileNotFoundError)
    assert issubclass(errors.AreaPermissionError, PermissionError)
    assert issubclass(errors.UnobservableMetricError, ValueError)


def test_every_result_code_maps_to_its_category():
    for name in dir(B):
        if not name.startswith("PROMSHM_RESULT_") or name == "PROMSHM_RESULT_OK":
            continue
        code = getattr(B, name)
        cls = errors.error_class(code)
        block = {1: errors.InvalidArgumentError, 2: errors.PromshmIOError, 3: errors.AreaError,
                 4: errors.RegistryError, 9: errors.InternalError}[code // 100]
        assert issubclass(cls, block), name


@pytest.mark.parametrize(
    "make, exc, code",
    [
        (lambda r: promshm.Counter("bad-name", "x", registry=r), errors.InvalidArgumentError, B.PROMSHM_RESULT_INVALID_METRIC_NAME),
        (lambda r: promshm.Counter("1abc", "x", registry=r), errors.InvalidArgumentError, B.PROMSHM_RESULT_INVALID_METRIC_NAME),
        (lambda r: promshm.Counter("ok", "x", ["bad-label"], registry=r), errors.InvalidArgumentError, B.PROMSHM_RESULT_INVALID_LABEL_NAME),
        (lambda r: promshm.Counter("ok", "x", ["__reserved"], registry=r), errors.InvalidArgumentError, B.PROMSHM_RESULT_RESERVED_LABEL),
        (lambda r: promshm.Histogram("h", "x", ["le"], registry=r), errors.InvalidArgumentError, B.PROMSHM_RESULT_RESERVED_LABEL),
        (lambda r: promshm.Summary("s", "x", ["quantile"], registry=r), errors.InvalidArgumentError, B.PROMSHM_RESULT_RESERVED_LABEL),
        (lambda r: promshm.Counter("ok", "x", ["a", "a"], registry=r), errors.InvalidArgumentError, B.PROMSHM_RESULT_DUPLICATE_LABEL),
        (lambda r: promshm.Histogram("h", "x", buckets=[1, 0.5], registry=r), errors.InvalidArgumentError, B.PROMSHM_RESULT_INVALID_BUCKETS),
        (lambda r: promshm.Summary("s", "x", quantiles=[1.5], registry=r), errors.InvalidArgumentError, B.PROMSHM_RESULT_INVALID_SUMMARY),
        (lambda r: promshm.Info("i", "x", unit="seconds", registry=r), errors.InvalidArgumentError, B.PROMSHM_RESULT_INVALID_UNIT),
        (lambda r: promshm.Counter("ok", "x", unit="bad unit", registry=r), errors.InvalidArgumentError, B.PROMSHM_RESULT_INVALID_UNIT),
        (lambda r: promshm.Enum("e", "x", states=[], registry=r), errors.InvalidArgumentError, B.PROMSHM_RESULT_INVALID_STATE),
        (lambda r: promshm.Enum("e", "x", states=["a", "a"], registry=r), errors.InvalidArgumentError, B.PROMSHM_RESULT_INVALID_STATE),
        (lambda r: promshm.Counter("promshm_mine", "x", registry=r), errors.InvalidArgumentError, B.PROMSHM_RESULT_INVALID_METRIC_NAME),
    ],
)
def test_bad_registration(registry, make, exc, code):
    with pytest.raises(exc) as ei:
        make(registry)
    assert ei.value.code == code
    assert isinstance(ei.value, ValueError)
    assert str(ei.value)  # a message, with the library's detail


def test_too_long(registry):
    # The header documents TOO_LONG for names over 1 KiB; the library reports
    # an over-long metric name as INVALID_METRIC_NAME today. Either is a ValueError.
    with pytest.raises(errors.InvalidArgumentError) as ei:
        promshm.Counter("x" * 2000, "x", registry=registry)
    assert ei.value.code in (B.PROMSHM_RESULT_TOO_LONG, B.PROMSHM_RESULT_INVALID_METRIC_NAME)
    c = promshm.Counter("c", "x", ["a"], registry=registry)
    with pytest.raises(errors.InvalidArgumentError) as ei:
        c.labels("v" * 20000)
    assert ei.value.code == B.PROMSHM_RESULT_TOO_LONG


def test_detail_names_the_culprit(registry):
    with pytest.raises(ValueError) as ei:
        promshm.Counter("ok", "x", ["a-b"], registry=registry)
    assert "a-b" in str(ei.value)
    assert "a-b" in ei.value.detail


def test_bad_gauge_mode(registry):
    with pytest.raises(ValueError, match="multiprocess mode"):
        promshm.Gauge("g", "x", registry=registry, multiprocess_mode="nope")


def test_shape_mismatch(registry):
    # Another registry on the same area (as another process would have): the
    # area checks the shape (one registry refuses a second object of a name).
    def other() -> promshm.CollectorRegistry:
        return promshm.CollectorRegistry(area=registry.area)

    promshm.Counter("same", "x", ["a"], registry=registry)
    promshm.Counter("same", "x", ["a"], registry=other())  # same shape: the same family
    with pytest.raises(errors.ShapeMismatchError):
        promshm.Gauge("same", "x", ["a"], registry=other())
    with pytest.raises(errors.ShapeMismatchError):
        promshm.Counter("same", "x", ["a", "b"], registry=other())
    promshm.Gauge("g", "x", registry=registry, multiprocess_mode="max")
    with pytest.raises(errors.ShapeMismatchError):
        promshm.Gauge("g", "x", registry=other(), multiprocess_mode="min")
    promshm.Histogram("h", "x", registry=registry, buckets=[1, 2])
    with pytest.raises(ValueError):
        promshm.Histogram("h", "x", registry=other(), buckets=[1, 3])


def test_label_errors(registry):
    c = promshm.Counter("c", "x", ["a", "b"], registry=registry)
    with pytest.raises(errors.LabelError):
        c.labels("1")
    with pytest.raises(errors.LabelError):
        c.labels("1", "2", "3")
    with pytest.raises(errors.LabelError):
        c.labels(a="1")
    with pytest.raises(errors.LabelError):
        c.labels(a="1", b="2", c="3")
    with pytest.raises(ValueError):
        c.labels("1", b="2")
    with pytest.raises(errors.UnobservableMetricError):
        c.inc()  # labels needed
    plain = promshm.Counter("plain", "x", registry=registry)
    with pytest.raises(ValueError):
        plain.labels("x")


def test_bad_values(registry):
    c = promshm.Counter("c", "x", registry=registry)
    with pytest.raises(ValueError):
        c.inc(-1)
    with pytest.raises(ValueError):
        c.inc(math.nan)
    with pytest.raises((TypeError, ValueError)):
        c.inc("a")  # type: ignore[arg-type]
    h = promshm.Histogram("h", "x", registry=registry)
    with pytest.raises(ValueError):
        h.observe(math.nan)
    e = promshm.Enum("e", "x", states=["a"], registry=registry)
    with pytest.raises(ValueError):
        e.state("b")
    i = promshm.Info("i", "x", ["a"], registry=registry)
    with pytest.raises(ValueError):
        i.labels("1").info({"a": "overlaps a label"})
    with pytest.raises(ValueError):
        i.labels("1").info({"bad-name": "x"})
    assert registry.get_sample_value("c_total") == 0


def test_strings_c_cannot_carry(registry):
    c = promshm.Counter("c", "x", ["a"], registry=registry)
    with pytest.raises(errors.InvalidArgumentError, match="NUL"):
        c.labels("a\0b")
    with pytest.raises(errors.InvalidArgumentError) as ei:
        c.labels("\ud800")  # a lone surrogate is not UTF-8
    assert ei.value.code == B.PROMSHM_RESULT_NOT_UTF8
    c.labels("ünïcødé ✓").inc()
    assert registry.get_sample_value("c_total", {"a": "ünïcødé ✓"}) == 1


def test_area_full():
    reg = promshm.CollectorRegistry(pages=8)
    c = promshm.Counter("c", "x", ["i"], registry=reg)
    with pytest.raises(errors.AreaFullError):
        for i in range(100000):
            c.labels(str(i)).inc()
    # existing series keep working, and the refusal is counted
    c.labels("0").inc()
    assert reg.get_sample_value("c_total", {"i": "0"}) == 2
    assert reg.area.stats()["refused"] >= 1


def test_area_files(tmp_path: Path):
    with pytest.raises(errors.AreaNotFoundError):
        promshm.Area.open(tmp_path / "missing.area")
    with pytest.raises(errors.AreaNotFoundError):
        promshm.Area(tmp_path / "no" / "such" / "dir.area")
    junk = tmp_path / "junk.area"
    junk.write_bytes(b"not an area at all" * 1000)
    with pytest.raises(errors.IncompatibleAreaError):
        promshm.Area.open(junk)
    with pytest.raises(errors.IncompatibleAreaError):
        promshm.Area(junk)
    good = promshm.Area(tmp_path / "good.area", pages=64)
    assert (good.path and Path(good.path).stat().st_mode & 0o777) == 0o600
    ro = promshm.Area.open(tmp_path / "good.area", read_only=True)
    with pytest.raises(errors.ReadOnlyAreaError):
        promshm.Counter("c", "x", registry=promshm.CollectorRegistry(area=ro))
    with pytest.raises(ValueError):
        promshm.Area.anonymous(pages=-1)
    with pytest.raises(ValueError):
        promshm.Area.anonymous(pages=1)  # below the minimum


def test_bad_formats(registry):
    with pytest.raises(ValueError):
        registry.render("xml")


def test_configure_after_use_is_refused():
    promshm.shared_area()
    with pytest.raises(promshm.PromshmError, match="already in use"):
        promshm.configure(path="/tmp/elsewhere.area")
    with pytest.raises(ValueError):
        promshm.configure(flush_interval=-1)


def test_no_crash_on_closed_area():
    a = promshm.Area.anonymous()
    a.close()
    a.close()
    with pytest.raises(promshm.PromshmError):
        a.stats()
