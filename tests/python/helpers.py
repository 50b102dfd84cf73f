"""Shared helpers for the client tests (no fixtures here: see conftest.py)."""

import os
import random
import struct
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# Kafka's record-batch compression codec ids (attributes & 0x07).
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def fjord_bin():
    path = os.environ.get("FJORD_BIN") or str(REPO_ROOT / "target" / "release" / "fjord")
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        pytest.fail(
            f"fjord binary not found at {path}: build it with "
            "`cargo build --release -p fjord` or set FJORD_BIN",
            pytrace=False,
        )
    return path


def wait_until(predicate, timeout_s, interval_s=0.1, what="condition"):
    """Polls predicate() until it returns a truthy value (which is returned)
    or fails the test after timeout_s."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what} (last value: {last!r})")


def make_records(n, seed, base_ts_ms=None):
    """Deterministic test records: dicts with key, value, headers, timestamp.

    Mixes null keys (every 50th), null values (every 7th, never both), empty values,
    values from 0 B to ~4 KiB (compressible and random bytes), no headers,
    several headers, repeated header keys and empty header values.
    """
    rng = random.Random(seed)
    if base_ts_ms is None:
        base_ts_ms = int(time.time() * 1000) - 3_600_000
    records = []
    for i in range(n):
        key = None if i % 50 == 0 else f"key-{i % 997}".encode()
        if i % 7 == 0:
            value = None
        elif i % 11 == 0:
            value = b""
        elif i % 3 == 0:
            value = rng.randbytes(rng.randrange(1, 600))
        else:
            value = (f"value {i} " * rng.randrange(1, 400)).encode()
        if key is None and value is None:
            value = b"kafka-python refuses a record with neither key nor value"
        if i % 5 == 0:
            headers = []
        elif i % 5 == 1:
            headers = [("idx", str(i).encode())]
        else:
            headers = [
                ("idx", str(i).encode()),
                ("trace", rng.randbytes(16)),
                ("empty", b""),
                ("idx", b"repeated-key"),
            ]
        records.append(
            {"key": key, "value": value, "headers": headers, "timestamp": base_ts_ms + i}
        )
    return records


def segment_batch_codecs(log_dir, topic, partition):
    """Returns the compression codec id of every record batch stored in the
    partition's segment files (<log_dir>/<topic>-<partition>/*.log), in order.
    Parses Kafka's on-disk record-batch (magic 2) header."""
    pdir = Path(log_dir) / f"{topic}-{partition}"
    segments = sorted(pdir.glob("*.log"))
    if not segments:
        pytest.fail(f"no *.log segment files in {pdir} (contents: {sorted(p.name for p in pdir.parent.glob('*'))})")
    codecs = []
    for seg in segments:
        data = seg.read_bytes()
        pos = 0
        batch_len = 0
        while pos + 23 <= len(data):
            _base_offset, batch_len = struct.unpack_from(">qi", data, pos)
            if batch_len <= 0:
                break  # preallocated zero tail
            magic = data[pos + 16]
            assert magic == 2, f"{seg} @ {pos}: magic {magic}, expected 2"
            (attributes,) = struct.unpack_from(">h", data, pos + 21)
            codecs.append(attributes & 0x07)
            pos += 12 + batch_len
        assert pos == len(data) or batch_len <= 0, f"{seg}: trailing partial batch at {pos} of {len(data)}"
    return codecs
