"""The tests' independent protobuf decoder: ``metrics_pb2`` generated at
test time by ``protoc`` from the upstream metrics.proto beside this file, run
by the ``protobuf`` package from PyPI, and a reader of length-delimited
``MetricFamily`` streams."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

HERE = Path(__file__).resolve().parent
WELL_KNOWN = Path("/usr/include")


def missing() -> Optional[str]:
    """Why the decoder cannot run here, or None."""
    if shutil.which("protoc") is None or not (WELL_KNOWN / "google/protobuf/timestamp.proto").exists():
        return "protoc and libprotobuf-dev are needed (scripts/setup.sh installs them)"
    if importlib.util.find_spec("google.protobuf") is None:
        return "the protobuf package is needed (scripts/setup.sh installs it)"
    return None


def compile_pb2(out: Path) -> Any:
    """Run protoc into ``out`` and load the generated module."""
    subprocess.run(
        ["protoc", f"-I{HERE}", f"-I{WELL_KNOWN}", f"--python_out={out}", "io/prometheus/client/metrics.proto"],
        check=True,
        timeout=60,
    )
    # Loaded from its file: `io` is the standard library's module name.
    spec = importlib.util.spec_from_file_location("metrics_pb2", out / "io/prometheus/client/metrics_pb2.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _varint(data: bytes, pos: int) -> Tuple[int, int]:
    shift = value = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def decode(pb2: Any, data: bytes) -> Dict[str, Any]:
    """Every length-delimited MetricFamily of ``data``, by name (each once)."""
    fams: Dict[str, Any] = {}
    pos = 0
    while pos < len(data):
        n, pos = _varint(data, pos)
        mf = pb2.MetricFamily()
        mf.ParseFromString(data[pos : pos + n])
        pos += n
        assert mf.name not in fams, f"{mf.name} twice"
        fams[mf.name] = mf
    assert pos == len(data)
    return fams


def labels(m: Any) -> Dict[str, str]:
    return {l.name: l.value for l in m.label}
