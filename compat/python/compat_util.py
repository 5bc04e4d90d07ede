"""Client-independent helpers for the compatibility suites."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    mask = 0xFFFFFFFF
    h = (seed ^ length) & mask
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rem = length % 4
    tail = length & ~3
    if rem == 3:
        h ^= data[tail + 2] << 16
    if rem >= 2:
        h ^= data[tail + 1] << 8
    if rem >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def kafka_partition(key: bytes, num_partitions: int) -> int:
    """The partition Java's DefaultPartitioner / librdkafka murmur2_random picks for a key."""
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


# Vectors from Kafka's UtilsTest.testMurmur2.
MURMUR2_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll predicate() until it returns a truthy value or the deadline passes.

    Returns the truthy value. Exceptions from predicate are remembered and reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    last_val = None
    while True:
        try:
            last_val = predicate()
            if last_val:
                return last_val
        except Exception as e:  # noqa: BLE001
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                 f"last value={last_val!r} last error={last_exc!r}")
        time.sleep(interval)


@dataclass
class Rec:
    """One produced record, with what the broker said about it."""
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp: int
    partition: int = -1
    offset: int = -1


@dataclass
class Dataset:
    records: list[Rec] = field(default_factory=list)

    def by_partition(self) -> dict[int, list[Rec]]:
        out: dict[int, list[Rec]] = {}
        for r in self.records:
            out.setdefault(r.partition, []).append(r)
        for p in out:
            out[p].sort(key=lambda r: r.offset)
        return out


def make_dataset(n: int = 200, base_ts: int | None = None, with_nulls: bool = True,
                 null_headers: bool = True) -> Dataset:
    """n keyed records with headers and explicit, per-key non-decreasing timestamps.

    Timestamps step by 1000 ms every 2 records (so every timestamp occurs twice, which
    exercises the '>=' edge of offsets_for_times). Keys repeat (25 distinct keys) so the
    same key is produced many times. A few values are null and a few are empty.
    """
    if base_ts is None:
        base_ts = now_ms() - 3_600_000  # an hour ago: well inside any retention
    ds = Dataset()
    for i in range(n):
        key = f"key-{i % 25:02d}".encode()
        if with_nulls and i % 50 == 7:
            value = None
        elif i % 50 == 8:
            value = b""
        else:
            value = (f"value-{i:04d}-" + "x" * (i % 37)).encode()
        headers: list[tuple[str, bytes | None]] = [
            ("seq", str(i).encode()),
            ("src", b"compat\x00\xff binary"),
        ]
        if i % 3 == 0:
            headers.append(("dup", b"first"))
            headers.append(("dup", b"second"))  # duplicate header keys are legal, order kept
        if with_nulls and null_headers and i % 10 == 5:
            headers.append(("nullh", None))
        if i % 7 == 0:
            headers.append(("unicode-\u00e9\u4e2d", "v\u00e9".encode()))
        ds.records.append(Rec(key, value, headers, base_ts + (i // 2) * 1000))
    return ds


def soak_rounds(default: int) -> int:
    return int(os.environ.get("SPATE_CRASH_ROUNDS", default))
