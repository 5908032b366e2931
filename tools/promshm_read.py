#!/usr/bin/env python3
"""Read a promshm area file and print its families and series as JSON.

An independent reader written from docs/FORMAT.md (format version 6) only,
with the Python standard library (mmap, struct). It never writes to the area,
takes no lock but the shared flock while validating the header, and trusts
nothing it reads: every offset and length is checked, damaged records are
skipped and counted in "bad_records" (section numbers refer to FORMAT.md).

Usage:
    promshm_read.py AREA [--now-ms MS] [--indent N]
    promshm_read.py AREA --check-free

--check-free prints one line, "free_records=N listed=N series=N
bad_records=N orphan_gauge_extensions=N", after a "problem: ..." line for each record that is both in
a free list and live and for each damaged free list; exit status 4 if there
was any problem.

Output (one JSON object):
    {"format_version": 6, "pages": .., "max_workers": .., "data_offset": ..,
     "alloc_cursor": .., "bad_records": .., "stats": {..}, "workers": [..],
     "free": {"records": [off, ..], "bytes": n, "lists": {size: [off, ..]},
              "free_and_live": [off, ..], "problems": [text, ..]},
     "orphan_gauge_extensions": [off, ..] (LIVE, reached by no gauge series),
     "families": [ {"name", "type", "help", "unit", "labels": [..],
                    "gauge_mode" (gauge), "buckets" (histogram),
                    "quantiles", "age_buckets", "max_age_ms" (summary),
                    "states" (stateset), "native": {"schema",
                    "zero_threshold", "lo", "hi", "max_buckets"} (native_histogram),
                    "series": [ {"labels": {name: value}, "created": f, ...} ]} ]}

Per type, each series carries:
    counter    "value"
    gauge      "value" (combined by the family's mode; for mode "all", the sum
               over the workers) and, for mode "all", "workers": {slot: value}
    histogram  "buckets": [[le, cumulative count], ...] (le "+Inf" last),
               "count", "sum"
    summary    "count", "sum", "quantiles": [[q, value], ...]
    info       "info": [[name, value], ...]
    stateset   "index" and "states": {state: true|false}
    native_histogram (type 7, FORMAT.md 8.8; exposed as a histogram)
               "schema" (after the render's reduction), "zero_threshold",
               "zero_count", "count", "sum", "positive" and "negative":
               [[bucket index, count], ...] (populated ones, increasing)

Floats that JSON cannot carry are written as the strings "NaN", "+Inf",
"-Inf". Families are sorted by name; series are in area order.

Exit status: 0 on success, 2 if the file is not a (compatible) area,
3 if its header is corrupt, 1 on an I/O error, 4 if --check-free found a
problem.
"""

import fcntl
import json
import math
import mmap
import os
import re
import struct
import sys
import time

# ---- constants (FORMAT.md sections 1, 2, 6) -------------------------------------

PAGE = 4096
MIN_PAGES = 3
MAX_PAGES = 0xFFFFFFFF // PAGE
MAGIC = b"PROMSHM1"
VERSION = 6
ENDIAN_TAG = 0x01020304
INIT_READY = 2
MAX_WORKERS = 4096
SLOT_SIZE = 64

KIND_FAMILY, KIND_SERIES, KIND_PADDING, KIND_BLOB, KIND_GAUGE_EXT = 1, 2, 3, 4, 5
KIND_EXEMPLAR = 6  # section 6.8: read past (exemplars are not reported)
STATE_WRITING, STATE_LIVE, STATE_REMOVED, STATE_FREE = 0, 1, 2, 3

# Reuse (section 6.5): size classes of series and blob records, free lists.
SMALL_CLASSES = [32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512,
                 640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096]
MAX_CLASS_PAGES = 16
CLASS_SIZES = SMALL_CLASSES + [p * PAGE for p in range(2, MAX_CLASS_PAGES + 1)]
FREE_LISTS = 512  # header: u32 head, u32 tail per class
REUSABLE = (KIND_SERIES, KIND_BLOB, KIND_GAUGE_EXT, KIND_EXEMPLAR)
SERIES_CELLS = 40  # first value cell of a series record

TYPES = {1: "counter", 2: "gauge", 3: "histogram", 4: "summary", 5: "info", 6: "stateset", 7: "native_histogram"}
GAUGE_MODES = {0: "sum", 1: "livesum", 2: "max", 3: "min", 4: "mostrecent", 5: "all", 6: "livemax", 7: "livemin", 8: "livemostrecent"}

MAX_NAME_LEN = 1024
MAX_HELP_LEN = 16 * 1024
MAX_VALUE_LEN = 16 * 1024
MAX_LABELS = 64
MAX_PARAMS = 1024
MAX_STATES = 1024
MAX_AGE_BUCKETS = 64

# Sketch (section 8.7).
SIGN_BUCKETS = 2073
SKETCH_BUCKETS = 2 * SIGN_BUCKETS + 1
ZERO_INDEX = SIGN_BUCKETS
GAMMA = 1.0201947117779826

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
UNIT = re.compile(r"[a-zA-Z0-9_]*")


class Incompatible(Exception):
    """Not an area this reader can read (FORMAT.md 2, exit 2)."""


class Corrupt(Exception):
    """An area whose header is damaged (FORMAT.md 2, exit 3)."""


class Bad(Exception):
    """A damaged record or series: skipped and counted."""


def align8(n):
    return (n + 7) & ~7


def class_size(n):
    """Record size of a series or blob whose contents end at `n` (section 6.5)."""
    n = max(align8(n), 32)
    for c in SMALL_CLASSES:
        if c >= n:
            return c
    return -(-n // PAGE) * PAGE


# ---- the mapping -----------------------------------------------------------------


class Area:
    """A validated, read-only view of an area (FORMAT.md 2 and 3)."""

    def __init__(self, path):
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags)
        try:
            # Wait for a creator that is still initialising.
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                size = os.fstat(fd).st_size
                if size < MIN_PAGES * PAGE:
                    raise Incompatible(f"{path}: {size} bytes is too small to be an area")
                if size > MAX_PAGES * PAGE:
                    raise Incompatible(f"{path}: {size} bytes is larger than any area")
                self.m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
                self._validate(path, size)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _validate(self, path, size):
        m = self.m
        hdr = lambda fmt, off: struct.unpack_from(fmt, m, off)[0]  # noqa: E731
        magic = bytes(m[0:8])
        if magic != MAGIC:
            if magic == b"\0" * 8 and hdr("<I", 28) != INIT_READY:
                raise Incompatible(f"{path}: not initialised (its creator died or is still creating it)")
            raise Incompatible(f"{path}: not a promshm area (bad magic)")
        endian = hdr("<I", 24)
        if endian != ENDIAN_TAG:
            raise Incompatible(f"{path}: written on a machine of the other byte order (tag {endian:#x})")
        version = hdr("<I", 8)
        if version != VERSION:
            raise Incompatible(f"{path}: format version {version}, this reader reads version {VERSION}")
        if hdr("<I", 28) != INIT_READY:
            raise Incompatible(f"{path}: initialisation never finished")
        page_size, header_size = hdr("<I", 16), hdr("<I", 12)
        if page_size != PAGE or header_size != PAGE:
            raise Incompatible(f"{path}: page size {page_size} / header size {header_size}, expected {PAGE}")
        pages = hdr("<I", 20)
        if pages < MIN_PAGES or pages * PAGE > size:
            raise Corrupt(f"header says {pages} pages but the file holds {size} bytes")
        self.len = pages * PAGE  # only the declared pages are used
        self.pages = pages
        max_workers = hdr("<I", 32)
        workers_offset = hdr("<I", 40)
        data_offset = hdr("<I", 44)
        worker_pages = (max_workers * SLOT_SIZE + PAGE - 1) // PAGE
        if (
            not 1 <= max_workers <= MAX_WORKERS
            or workers_offset != PAGE
            or data_offset != PAGE * (1 + worker_pages)
            or data_offset >= self.len
        ):
            raise Corrupt(
                f"inconsistent layout: {max_workers} workers at {workers_offset}, data at {data_offset}"
            )
        self.max_workers = max_workers
        self.data_offset = data_offset

    # Bounds-checked reads: everything below the declared length, nothing else.

    def u32(self, off):
        if off < 0 or off + 4 > self.len:
            raise Bad(f"u32 at {off} outside the area")
        return struct.unpack_from("<I", self.m, off)[0]

    def u64(self, off):
        if off < 0 or off + 8 > self.len:
            raise Bad(f"u64 at {off} outside the area")
        return struct.unpack_from("<Q", self.m, off)[0]

    def f64(self, off):
        if off < 0 or off + 8 > self.len:
            raise Bad(f"f64 at {off} outside the area")
        return struct.unpack_from("<d", self.m, off)[0]

    def cells(self, off, n, fmt="Q"):
        if off < 0 or off + 8 * n > self.len:
            raise Bad(f"{n} cells at {off} outside the area")
        return struct.unpack_from(f"<{n}{fmt}", self.m, off)

    def cursor(self):
        c = struct.unpack_from("<Q", self.m, 48)[0]
        return min(max(c, self.data_offset), self.len)

    def header_u64(self, off):
        return struct.unpack_from("<Q", self.m, off)[0]


class RecordReader:
    """Reads fields of one record, bounds-checked against the record (FORMAT.md 7, 8)."""

    def __init__(self, area, off, length, pos, classed=False):
        self.a, self.off, self.len, self.pos = area, off, length, pos
        self.classed = classed

    def take(self, n):
        if self.pos + n > self.len:
            raise Bad("field past the end of its record")
        at = self.off + self.pos
        self.pos += n
        return at

    def u32(self):
        return self.a.u32(self.take(4))

    def f64(self):
        return self.a.f64(self.take(8))

    def string(self, limit):
        n = self.u32()
        if n > limit:
            raise Bad(f"string of {n} bytes, at most {limit}")
        at = self.take(n)
        raw = bytes(self.a.m[at : at + n])  # a copy: the area is never referenced
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Bad("string is not UTF-8") from None

    def at_end(self):
        if self.classed:
            return class_size(self.pos) == self.len
        return align8(self.pos) == self.len


# ---- walking (FORMAT.md 6.4) -----------------------------------------------------


def walk(area):
    """Yield (off, kind, state, length) of every structurally valid record but
    padding; returns the number of bad headers (page tails skipped) at the end."""
    limit = area.cursor()
    off = area.data_offset
    bad = 0
    out = []
    while off + 8 <= limit:
        tag = area.u32(off)
        length = area.u32(off + 4)
        kind, state = tag & 0xFF, (tag >> 8) & 0xFF
        in_page = off % PAGE
        if (
            not KIND_FAMILY <= kind <= KIND_EXEMPLAR
            or state > STATE_FREE
            or tag >> 16 != 0
            or (kind in REUSABLE and state != STATE_FREE and class_size(length) != length)
            or (kind in REUSABLE and state == STATE_FREE and length < 32)
            or length < 8
            or length % 8 != 0
            or off + length > limit
            or (length <= PAGE and in_page + length > PAGE)
            or (length > PAGE and in_page != 0)
            or (kind == KIND_PADDING and (off + length) % PAGE != 0)
        ):
            bad += 1
            off = (off // PAGE + 1) * PAGE
            continue
        if kind != KIND_PADDING:
            out.append((off, kind, state, length))
        off += length
    return out, bad


# ---- families (FORMAT.md 7) ------------------------------------------------------


def n_cells_for(ftype, n_params, age_buckets, max_workers):
    if ftype == "gauge":
        return GAUGE_CELLS
    if ftype == "histogram":
        return n_params + 2 + 1  # + the exemplar link (section 6.8)
    if ftype == "summary":
        windows = max(age_buckets, 1)
        epoch = 1 if age_buckets > 0 else 0
        return 2 + windows * (epoch + SKETCH_BUCKETS)
    if ftype == "counter":
        return 3  # frac (f64), int (u64), the exemplar link (sections 8.2, 8.9)
    return 1


def check_label_names(names, ftype, family):
    seen = set()
    for n in names:
        if not LABEL_NAME.fullmatch(n) or n.startswith("__"):
            raise Bad(f"invalid label name {n!r}")
        if n in ("le", "quantile") or (ftype == "stateset" and n == family):
            raise Bad(f"reserved label name {n!r}")
        if n in seen:
            raise Bad(f"label name {n!r} twice")
        seen.add(n)


def decode_family(area, off, length):
    if length < 40:
        raise Bad("family record too short")
    b = bytes(area.m[off + 16 : off + 40])
    type_b, mode_b, _flags, n_labels = b[0], b[1], b[2], b[3]
    n_params, n_states = struct.unpack_from("<HH", b, 4)
    age_buckets, n_cells, max_age_ms = struct.unpack_from("<IIQ", b, 8)
    if type_b not in TYPES or mode_b not in GAUGE_MODES:
        raise Bad("unknown type or gauge mode")
    ftype = TYPES[type_b]
    if n_labels > MAX_LABELS or n_params > MAX_PARAMS or n_states > MAX_STATES or age_buckets > MAX_AGE_BUCKETS:
        raise Bad("counts out of range")
    r = RecordReader(area, off, length, 40)
    params = [r.f64() for _ in range(n_params)]
    name = r.string(MAX_NAME_LEN)
    help_text = r.string(MAX_HELP_LEN)
    unit = r.string(MAX_NAME_LEN)
    labels = [r.string(MAX_NAME_LEN) for _ in range(n_labels)]
    states = [r.string(MAX_NAME_LEN) for _ in range(n_states)]
    if not r.at_end():
        raise Bad("family record longer than its content")
    if not METRIC_NAME.fullmatch(name):
        raise Bad(f"invalid metric name {name!r}")
    if unit and (not UNIT.fullmatch(unit) or ftype in ("info", "stateset")):
        raise Bad(f"invalid unit {unit!r}")
    check_label_names(labels, ftype, name)
    if ftype == "histogram":
        for i, p in enumerate(params):
            if not math.isfinite(p) or (i > 0 and not params[i - 1] < p):
                raise Bad("histogram buckets not finite and increasing")
    elif ftype == "summary":
        for i, q in enumerate(params):
            if not 0.0 <= q <= 1.0 or (i > 0 and not params[i - 1] < q):
                raise Bad("quantiles not in [0, 1] and increasing")
        if age_buckets == 0 and max_age_ms != 0:
            raise Bad("window without age buckets")
        if age_buckets > 0 and max_age_ms < age_buckets:
            raise Bad("window shorter than its buckets")
    elif ftype == "stateset":
        if not states or len(set(states)) != len(states):
            raise Bad("states empty or repeated")
    elif ftype == "native_histogram":
        native_layout(params)
    if ftype not in ("histogram", "summary", "native_histogram") and params:
        raise Bad("unexpected parameters")
    if ftype != "stateset" and states:
        raise Bad("unexpected states")
    mode = GAUGE_MODES[mode_b]
    if ftype == "gauge" and mode == "all" and "worker" in labels:
        raise Bad("an all-mode gauge cannot have a worker label")
    if ftype == "native_histogram":
        want_cells = native_n_cells(native_layout(params)) + 1  # + the exemplar link
    else:
        want_cells = n_cells_for(ftype, n_params, age_buckets, area.max_workers)
    if n_cells != want_cells:
        raise Bad("cell count does not match the type")
    return {
        "off": off,
        "name": name,
        "type": ftype,
        "help": help_text,
        "unit": unit,
        "labels": labels,
        "params": params,
        "states": states,
        "gauge_mode": mode,
        "age_buckets": age_buckets,
        "max_age_ms": max_age_ms,
        "n_cells": n_cells,
        "series": [],
    }


# ---- series (FORMAT.md 8) --------------------------------------------------------


def series_values(area, off, length, fam):
    """Label values of a series, after the structural checks of section 8."""
    n = fam["n_cells"]
    if area.u32(off + 20) != n or length < SERIES_CELLS + 8 * n:
        raise Bad("series cell count does not match its family")
    r = RecordReader(area, off, length, SERIES_CELLS + 8 * n, classed=True)
    values = [r.string(MAX_VALUE_LEN) for _ in fam["labels"]]
    if not r.at_end():
        raise Bad("series record longer than its content")
    return values


def read_blob(area, cell, any_generation=False):
    """Info pairs of the BLOB record an info cell refers to (section 8.5):
    offset in the low 32 bits, the blob's generation's low 32 in the high
    ones. With any_generation, `cell` is just an offset. None if unusable."""
    off = cell & 0xFFFFFFFF
    try:
        if off == 0 or off % 8 != 0:
            return None
        tag = area.u32(off)
        if tag & 0xFF != KIND_BLOB or (tag >> 8) & 0xFF != STATE_LIVE:
            return None
        if not any_generation and area.u64(off + 8) & 0xFFFFFFFF != cell >> 32:
            return None
        length = area.u32(off + 4)
        if length < 32 or off + length > area.len:
            return None
        r = RecordReader(area, off, length, 16, classed=True)
        n = r.u32()
        if n > MAX_LABELS:
            return None
        r.u32()  # zero
        pairs = []
        for _ in range(n):
            k = r.string(MAX_NAME_LEN)
            v = r.string(MAX_VALUE_LEN)
            if not LABEL_NAME.fullmatch(k) or k.startswith("__") or k in ("le", "quantile"):
                return None
            if any(p == k for p, _ in pairs):
                return None
            pairs.append((k, v))
        return pairs if r.at_end() else None
    except Bad:
        return None


def f64_bits(u):
    return struct.unpack("<d", struct.pack("<Q", u))[0]


def fmax(a, b):
    if a != a:
        return b
    if b != b:
        return a
    return a if a >= b else b


def fmin(a, b):
    if a != a:
        return b
    if b != b:
        return a
    return a if a <= b else b


FOLD_SEQ, FOLD_CELLS, FOLD_VALUE, FOLD_STAMP = 152, 160, 168, 176
SLOT_REAPING = 2


# Gauge series (section 6.6): retained value, retained stamp, link, then
# inline entries [tag << 48 | stamp, value]; more entries in extension
# records (kind 5): u32 owner at 16, u32 entries at 20, u64 owner
# generation at 24, u64 link at 32, entries from 40.
GAUGE_INLINE = 2
GAUGE_CELLS = 3 + 2 * GAUGE_INLINE
GAUGE_MAX_HOPS = 64
GAUGE_EXT_MAX = (PAGE - 40) // 16
STAMP_MASK = (1 << 48) - 1


def gauge_extension(area, off, owner, gen):
    """Entries of the extension at `off` if it is a LIVE extension of the
    series `owner` of generation `gen`, else None (the chain ends)."""
    if off % 8 or off < area.data_offset or off + 40 > area.cursor():
        return None
    tag, length = area.u32(off), area.u32(off + 4)
    if tag != KIND_GAUGE_EXT | (STATE_LIVE << 8) or class_size(length) != length:
        return None
    if off + length > area.cursor() or (length <= PAGE and off % PAGE + length > PAGE):
        return None
    n = area.u32(off + 20)
    if area.u32(off + 16) != owner or area.u64(off + 24) != gen:
        return None
    if not 1 <= n <= GAUGE_EXT_MAX or 40 + 16 * n > length:
        return None
    return n


def gauge_chain(area, series_off):
    """(entry offsets, extension offsets) of a gauge series: the inline
    entries, then those of each valid extension, at most GAUGE_MAX_HOPS
    hops, never one seen before."""
    cells = series_off + SERIES_CELLS
    gen = area.u64(series_off + 8)
    entries = [cells + 8 * (3 + 2 * i) for i in range(GAUGE_INLINE)]
    exts = []
    link = cells + 16
    while len(exts) < GAUGE_MAX_HOPS:
        nxt = area.u64(link)
        if nxt == 0 or nxt in exts:
            break
        n = gauge_extension(area, nxt, series_off, gen)
        if n is None:
            break
        exts.append(nxt)
        entries.extend(nxt + 40 + 16 * i for i in range(n))
        link = nxt + 32
    return entries, exts


def read_gauge(area, cells_off, fam):
    """Read a gauge series consistently with the reaper's folds (section 8.3):
    retry while the fold sequence changes; while it is odd, read the series
    being folded as the fold leaves it."""
    for _ in range(1000):
        seq = area.u64(FOLD_SEQ)
        folding = None
        if seq & 1 and area.u64(FOLD_CELLS) == cells_off:
            reaping = {s for s in range(area.max_workers) if area.u32(PAGE + 64 * s) == SLOT_REAPING}
            folding = (area.u64(FOLD_VALUE), area.u64(FOLD_STAMP), reaping)
        retained = area.cells(cells_off, 2)
        entries = []
        for e in gauge_chain(area, cells_off - SERIES_CELLS)[0]:
            word, value = area.cells(e, 2)
            entries.append((word >> 48, word & STAMP_MASK, value))
        result = gauge_value(retained, entries, fam["gauge_mode"], area.max_workers, folding)
        if area.u64(FOLD_SEQ) == seq:
            break
    return result


def gauge_value(retained_pair, entries, mode, max_workers, folding=None):
    """Combine a gauge's entries by its mode (section 8.3): (value, {slot: value}).
    `entries`: (tag, stamp, value bits); `folding`: (retained value bits,
    retained stamp, reaped slots) of a fold in progress. Workers combine in
    slot order."""
    acc = None
    workers = {}
    (retained, retained_stamp), skip = retained_pair, set()
    if folding is not None:
        retained, retained_stamp, skip = folding
    if mode in ("sum", "max", "min", "mostrecent") and retained_stamp != 0:
        acc = (f64_bits(retained), retained_stamp)
    written = sorted((tag - 1, stamp, bits) for tag, stamp, bits in entries
                     if stamp != 0 and 1 <= tag <= max_workers)
    for s, stamp, bits in written:
        if s in skip:
            continue
        v = f64_bits(bits)
        if mode == "all":
            workers[str(s)] = v
        if acc is None:
            acc = (v, stamp)
        elif mode in ("max", "livemax"):
            acc = (fmax(acc[0], v), max(acc[1], stamp))
        elif mode in ("min", "livemin"):
            acc = (fmin(acc[0], v), max(acc[1], stamp))
        elif mode in ("mostrecent", "livemostrecent"):
            if stamp >= acc[1]:
                acc = (v, stamp)
        else:
            acc = (acc[0] + v, max(acc[1], stamp))
    return (acc[0] if acc is not None else 0.0), workers


# ---- the summary sketch (section 8.7) --------------------------------------------

_BOUNDS = None


def bounds():
    global _BOUNDS
    if _BOUNDS is None:
        out = []
        b = 1e-9
        for _ in range(SIGN_BUCKETS):
            out.append(b)
            b *= GAMMA
        out.append(1e9)
        _BOUNDS = out
    return _BOUNDS


def sketch_value(index):
    if index == ZERO_INDEX:
        return 0.0
    if index > ZERO_INDEX:
        m, sign = index - ZERO_INDEX - 1, 1.0
    else:
        m, sign = ZERO_INDEX - 1 - index, -1.0
    lo, hi = bounds()[m], bounds()[m + 1]
    return sign * (2.0 * lo * hi / (lo + hi))


def sketch_quantiles(counts, quantiles):
    total = sum(counts)
    out = []
    for q in quantiles:
        if total == 0 or q != q:
            out.append(float("nan"))
            continue
        q = min(max(q, 0.0), 1.0)
        rank = min(max(math.ceil(q * float(total)), 1), total) - 1
        below = 0
        index = 0
        while below + counts[index] <= rank:
            below += counts[index]
            index += 1
        out.append(sketch_value(index))
    return out


def summary_counts(area, cells_off, age_buckets, max_age_ms, now_ms):
    if age_buckets == 0:
        return list(area.cells(cells_off + 16, SKETCH_BUCKETS))
    k = age_buckets
    now = now_ms // max(max_age_ms // k, 1) + 1
    counts = [0] * SKETCH_BUCKETS
    for b in range(k):
        base = cells_off + 8 * (2 + b * (1 + SKETCH_BUCKETS))
        epoch = area.u64(base)
        if epoch != 0 and epoch <= now and now - epoch < k:
            # A count cell is `tag << 40 | count`; only cells tagged with the
            # bucket's epoch (its low 24 bits) count.
            tag = epoch & 0xFFFFFF
            for i, c in enumerate(area.cells(base + 8, SKETCH_BUCKETS)):
                if c >> 40 == tag:
                    counts[i] += c & 0xFFFFFFFFFF
    return counts


# ---- reading everything ----------------------------------------------------------


def jf(x):
    """A float JSON can carry."""
    if x != x:
        return "NaN"
    if x == math.inf:
        return "+Inf"
    if x == -math.inf:
        return "-Inf"
    return x


def read_series(area, off, length, fam, now_ms):
    values = series_values(area, off, length, fam)
    out = {"labels": dict(zip(fam["labels"], values))}
    created = area.f64(off + 24)
    if math.isfinite(created) and created > 0:
        out["created"] = created
    cells_off = off + SERIES_CELLS
    ftype = fam["type"]
    if ftype == "counter":
        # Section 8.2: total = f64(int) + frac; a NaN or negative frac is damage.
        frac = f64_bits(area.u64(cells_off))
        if frac != frac or frac < 0:
            raise Bad("counter total is NaN or negative")
        out["value"] = jf(float(area.u64(cells_off + 8)) + frac)
    elif ftype == "gauge":
        value, workers = read_gauge(area, cells_off, fam)
        out["value"] = jf(value)
        if fam["gauge_mode"] == "all":
            out["workers"] = {s: jf(v) for s, v in workers.items()}
    elif ftype == "histogram":
        cells = area.cells(cells_off, fam["n_cells"])
        acc = 0
        buckets = []
        for i, bound in enumerate(fam["params"] + [math.inf]):
            acc = (acc + cells[1 + i]) % (1 << 64)
            buckets.append([jf(bound), acc])
        out["buckets"] = buckets
        out["count"] = acc
        out["sum"] = jf(f64_bits(cells[0]))
    elif ftype == "summary":
        out["count"] = area.u64(cells_off)
        out["sum"] = jf(area.f64(cells_off + 8))
        if fam["params"]:
            counts = summary_counts(area, cells_off, fam["age_buckets"], fam["max_age_ms"], now_ms)
            qs = sketch_quantiles(counts, fam["params"])
            out["quantiles"] = [[q, jf(v)] for q, v in zip(fam["params"], qs)]
        else:
            out["quantiles"] = []
    elif ftype == "info":
        pairs = read_blob(area, area.u64(cells_off)) or []
        if any(k in fam["labels"] for k, _ in pairs):
            raise Bad("info pair named like a family label")
        out["info"] = [[k, v] for k, v in pairs]
    elif ftype == "native_histogram":
        out.update(read_native(area, cells_off, native_layout(fam["params"])))
    elif ftype == "stateset":
        current = area.u64(cells_off)
        out["index"] = current
        out["states"] = {s: i == current for i, s in enumerate(fam["states"])}
    return out


# ---- native histograms (FORMAT.md 8.8) ------------------------------------------

NATIVE_MIN_SCHEMA, NATIVE_MAX_SCHEMA = -4, 8
NATIVE_MAX_INDEX = 1 << 20
NATIVE_MAX_WINDOW = 8192


def native_layout(params):
    """(schema, zero_threshold, lo, hi, max_buckets) of a type-7 family's
    params, or Bad unless every one is valid."""
    if len(params) != 5:
        raise Bad("native histogram needs 5 parameters")
    schema, zt, lo, hi, max_buckets = params

    def integer(v, lo_, hi_):
        if not (math.isfinite(v) and v == math.floor(v) and lo_ <= v <= hi_):
            raise Bad("native histogram parameter out of range")
        return int(v)

    schema = integer(schema, NATIVE_MIN_SCHEMA, NATIVE_MAX_SCHEMA)
    lo = integer(lo, -NATIVE_MAX_INDEX, NATIVE_MAX_INDEX)
    hi = integer(hi, -NATIVE_MAX_INDEX, NATIVE_MAX_INDEX)
    max_buckets = integer(max_buckets, 0, 0xFFFFFFFF)
    if not (math.isfinite(zt) and zt >= 0.0) or not (lo <= hi and hi - lo < NATIVE_MAX_WINDOW):
        raise Bad("native histogram zero threshold or window out of range")
    return schema, zt, lo, hi, max_buckets


def native_n_cells(layout):
    _, _, lo, hi, _ = layout
    return 2 + 2 * (hi - lo + 1)


def halve(buckets):
    """One schema down: bucket i goes to (i + 1) >> 1, counts that meet added."""
    out = {}
    for i, c in buckets:
        j = (i + 1) >> 1
        out[j] = (out.get(j, 0) + c) % (1 << 64)
    return sorted(out.items())


def read_native(area, cells_off, layout):
    """A native series as a render shows it: the zero bucket, the sorted
    populated buckets of each sign, reduced while more than max_buckets."""
    schema, zt, lo, _hi, max_buckets = layout
    width = native_n_cells(layout) // 2 - 1
    cells = area.cells(cells_off, 2 + 2 * width)
    zero = cells[1]
    pos = [(lo + k, c) for k, c in enumerate(cells[2 : 2 + width]) if c]
    neg = [(lo + k, c) for k, c in enumerate(cells[2 + width :]) if c]
    total = f64_bits(cells[0])
    while max_buckets and len(pos) + len(neg) > max_buckets and schema > NATIVE_MIN_SCHEMA:
        pos, neg, schema = halve(pos), halve(neg), schema - 1
    count = (zero + sum(c for _, c in pos) + sum(c for _, c in neg)) % (1 << 64)
    return {
        "schema": schema,
        "zero_threshold": jf(zt),
        "zero_count": zero,
        "count": count,
        "sum": jf(total),
        "positive": [[i, c] for i, c in pos],
        "negative": [[i, c] for i, c in neg],
    }


def read_area(path, now_ms=None):
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    area = Area(path)
    records, bad = walk(area)
    families = {}  # record offset -> family
    names = set()
    series_records = []
    gauge_exts = set()
    unregistered = set()  # REMOVED families (section 7, unregistering)
    for off, kind, state, length in records:
        if state != STATE_LIVE:
            # WRITING: being written, or its writer died. REMOVED: a series
            # or blob being recycled, or a family being unregistered (its
            # series follow it, then its record becomes a FREE record of
            # kind BLOB). A FREE family is damage.
            if kind == KIND_FAMILY and state == STATE_REMOVED:
                unregistered.add(off)
            elif kind == KIND_FAMILY and state == STATE_FREE:
                bad += 1
            continue
        if kind == KIND_FAMILY:
            try:
                fam = decode_family(area, off, length)
            except Bad:
                bad += 1
                continue
            if fam["name"] in names:
                bad += 1  # the first family of a name wins
                continue
            names.add(fam["name"])
            families[off] = fam
        elif kind == KIND_SERIES:
            # Its family may follow it (section 6.5): resolved after the walk.
            series_records.append((area.u32(off + 16), off, length))
        elif kind == KIND_BLOB:
            if read_blob(area, off, any_generation=True) is None:
                bad += 1
        elif kind == KIND_GAUGE_EXT:
            gauge_exts.add(off)
    for fam_off, off, length in series_records:
        fam = families.get(fam_off)
        if fam is None:
            if fam_off in unregistered:
                continue  # left by an unregister (not rendered, not damage)
            if names:
                bad += 1  # a series whose family is unknown or damaged
            continue
        fam["series"].append((off, length))
    out_families = []
    for fam in sorted(families.values(), key=lambda f: f["name"]):
        series = []
        for off, length in fam["series"]:
            try:
                series.append(read_series(area, off, length, fam, now_ms))
            except Bad:
                bad += 1
                continue
            if fam["type"] == "gauge":
                gauge_exts.difference_update(gauge_chain(area, off)[1])
        f = {
            "name": fam["name"],
            "type": fam["type"],
            "help": fam["help"],
            "unit": fam["unit"],
            "labels": fam["labels"],
            "series": series,
        }
        if fam["type"] == "gauge":
            f["gauge_mode"] = fam["gauge_mode"]
        elif fam["type"] == "histogram":
            f["buckets"] = fam["params"]
        elif fam["type"] == "summary":
            f["quantiles"] = fam["params"]
            f["age_buckets"] = fam["age_buckets"]
            f["max_age_ms"] = fam["max_age_ms"]
        elif fam["type"] == "stateset":
            f["states"] = fam["states"]
        elif fam["type"] == "native_histogram":
            keys = ("schema", "zero_threshold", "lo", "hi", "max_buckets")
            f["native"] = dict(zip(keys, native_layout(fam["params"])))
        out_families.append(f)
    workers = []
    for s in range(area.max_workers):
        base = PAGE + SLOT_SIZE * s
        if area.u32(base) != 1:
            continue
        identity = area.u64(base + 8)
        workers.append(
            {
                "slot": s,
                "pid": identity & 0xFFFFFFFF,
                "generation": area.u32(base + 4),
                "start_time": area.u64(base + 24),
                "heartbeat_ms": area.u64(base + 32),
                "last_flush_ms": area.u64(base + 40),
                "attached_ms": area.u64(base + 48),
                "flushes": area.u32(base + 56),
            }
        )
    stat_names = [
        "refused", "reaped", "flushes", "bad_records", "render_ns",
        "locks_recovered", "series", "families", "dropped",
    ]
    free = free_lists(area, records)
    return {
        "format_version": VERSION,
        "pages": area.pages,
        "max_workers": area.max_workers,
        "data_offset": area.data_offset,
        "alloc_cursor": area.cursor(),
        "created_ms": area.header_u64(72),
        "bad_records": bad,
        "stats": {n: area.header_u64(80 + 8 * i) for i, n in enumerate(stat_names)},
        "workers": workers,
        "free": free,
        # LIVE gauge extensions no rendered gauge series' chain reaches: left
        # by a process killed while freeing a series, until the next rebuild.
        "orphan_gauge_extensions": sorted(gauge_exts),
        "families": out_families,
    }


def hole_list(length):
    """The free list of a hole of `length` bytes (section 6.5): the largest
    class it can hold, or None."""
    if length < 32:
        return None
    if length <= PAGE:
        return max(i for i, c in enumerate(SMALL_CLASSES) if c <= length)
    return len(SMALL_CLASSES) + min(length // PAGE, MAX_CLASS_PAGES) - 2


def free_lists(area, records):
    """The FREE records of the walk and the free lists of the header
    (section 6.5), checked against each other: every list node must be a
    FREE record of the list's size range; a node that is LIVE is listed in
    "free_and_live". Each list is followed at most as many steps as there
    are records, so a damaged (cyclic) list ends."""
    state_at = {off: (kind, state, length) for off, kind, state, length in records}
    free = [off for off, kind, state, _ in records if state == STATE_FREE]
    lists, problems, free_and_live = {}, [], []
    for c, size in enumerate(CLASS_SIZES):
        head = area.u32(FREE_LISTS + 8 * c)
        tail = area.u32(FREE_LISTS + 8 * c + 4)
        nodes, seen, off = [], set(), head
        while off != 0:
            if off in seen:
                problems.append(f"list {size}: cycle at {off}")
                break
            if len(nodes) > len(records):
                problems.append(f"list {size}: longer than the records")
                break
            seen.add(off)
            rec = state_at.get(off)
            if rec is None:
                problems.append(f"list {size}: node {off} is not a record")
                break
            kind, state, length = rec
            if state == STATE_LIVE:
                free_and_live.append(off)
            if state != STATE_FREE or hole_list(length) != c or kind not in REUSABLE:
                problems.append(f"list {size}: node {off} is not a free record of its class (state {state}, len {length})")
                break
            nodes.append(off)
            off = area.u32(off + 16)
        if nodes and tail != nodes[-1]:
            problems.append(f"list {size}: tail {tail} is not its last node {nodes[-1]}")
        if nodes:
            lists[str(size)] = nodes
    return {
        "records": free,
        "bytes": sum(state_at[o][2] for o in free),
        "lists": lists,
        "free_and_live": free_and_live,
        "problems": problems,
    }


def main(argv):
    args = argv[1:]
    now_ms = None
    indent = None
    path = None
    check_free = False
    while args:
        a = args.pop(0)
        if a == "--check-free":
            check_free = True
        elif a == "--now-ms" and args:
            now_ms = int(args.pop(0))
        elif a == "--indent" and args:
            indent = int(args.pop(0))
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        elif path is None:
            path = a
        else:
            print(f"promshm_read: unexpected argument {a!r}", file=sys.stderr)
            return 1
    if path is None:
        print("usage: promshm_read.py AREA [--now-ms MS] [--indent N]", file=sys.stderr)
        return 1
    try:
        result = read_area(path, now_ms)
    except Incompatible as e:
        print(f"promshm_read: incompatible area: {e}", file=sys.stderr)
        return 2
    except Corrupt as e:
        print(f"promshm_read: corrupt area: {e}", file=sys.stderr)
        return 3
    except OSError as e:
        print(f"promshm_read: {path}: {e}", file=sys.stderr)
        return 1
    if check_free:
        free = result["free"]
        problems = [f"record {o} is in a free list and live" for o in free["free_and_live"]]
        problems += free["problems"]
        for p in problems:
            print(f"problem: {p}")
        listed = sum(len(v) for v in free["lists"].values())
        series = sum(len(f["series"]) for f in result["families"])
        print(
            f"free_records={len(free['records'])} listed={listed} series={series} "
            f"bad_records={result['bad_records']} "
            f"orphan_gauge_extensions={len(result['orphan_gauge_extensions'])}"
        )
        return 4 if problems else 0
    json.dump(result, sys.stdout, indent=indent, allow_nan=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
