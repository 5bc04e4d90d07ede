"""The workload every fault scenario runs, and the checker that reads the full history back.

``Workload`` is an idempotent (``enable.idempotence=true``) acks=all librdkafka producer that
writes numbered values to every partition of a topic without pause, recording each
acknowledgement (partition, offset, value) and each definite failure. ``check`` then reads
every partition from its start to its high watermark and asserts, per partition:

- no loss: every acknowledged value is in the log, at exactly the acknowledged offset;
- no duplicates: no value appears twice (the idempotent producer's promise under retries);
- order: values appear in the order they were produced (sequence numbers increase);
- one writer: no two acknowledgements claim the same offset (two leaders accepting writes
  for one partition at once would show up here, or as a lost acknowledged value).

Values that were sent but never acknowledged (in flight at a kill) may or may not be in the
log; both are correct. A value acknowledged without an offset (librdkafka's idempotent
producer reports a batch whose request failed in flight as delivered once a later batch
proves the broker has it) must be in the log once, at any offset.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from netcluster import wait_until
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

log = logging.getLogger("faults")


@dataclass
class History:
    acked: dict[int, dict[int, int]] = field(default_factory=dict)  # partition -> offset -> seq
    # Acknowledged without an offset: librdkafka's idempotent producer reports a batch whose
    # request failed in flight as delivered (offset -1) once a later batch proves the broker
    # has it. partition -> seqs
    acked_no_offset: dict[int, set[int]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    duplicate_acks: list[str] = field(default_factory=list)
    sent: int = 0

    def acked_count(self) -> int:
        return (sum(len(v) for v in self.acked.values())
                + sum(len(v) for v in self.acked_no_offset.values()))


class Workload(threading.Thread):
    """Produces ``<partition>-<seq>`` values round-robin over ``partitions`` until stopped."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, rate_per_s: int = 400):
        super().__init__(daemon=True, name=f"workload-{topic}")
        self.topic = topic
        self.partitions = partitions
        self.interval = 1.0 / rate_per_s
        self.history = History(acked={p: {} for p in range(partitions)})
        # When each partition's acknowledgements arrived (monotonic clock), for ack gaps.
        self.ack_times: dict[int, list[float]] = {p: [] for p in range(partitions)}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.fatal: str | None = None
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "broker.address.family": "v4",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            # Never give up on a record during a failover: an expired record is a definite
            # failure only to the application, but it makes the check weaker.
            "message.timeout.ms": 300000,
            "request.timeout.ms": 5000,
            "retry.backoff.ms": 100,
            "retry.backoff.max.ms": 500,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "topic.metadata.refresh.interval.ms": 1000,
            "logger": logging.getLogger("librdkafka"),
            "error_cb": self._on_error,
        })
        self.next_seq = {p: 0 for p in range(partitions)}

    def _on_error(self, err: KafkaError):
        if err.fatal():
            self.fatal = str(err)
            log.error("fatal producer error: %s", err)

    def _on_delivery(self, err, msg):
        with self.lock:
            if err is not None:
                self.history.failed.append(f"{msg.partition()}:{msg.value()!r}: {err}")
                return
            p, offset = msg.partition(), msg.offset()
            seq = int(msg.value().decode().split("-")[1])
            self.ack_times[p].append(time.monotonic())
            if offset is None:
                self.history.acked_no_offset.setdefault(p, set()).add(seq)
                return
            if offset in self.history.acked[p]:
                self.history.duplicate_acks.append(f"p{p}@{offset}: {self.history.acked[p][offset]} and {seq}")
            self.history.acked[p][offset] = seq

    def run(self):
        p = 0
        while not self.stopping.is_set() and self.fatal is None:
            seq = self.next_seq[p]
            try:
                self.producer.produce(self.topic, value=f"{p}-{seq}".encode(), partition=p,
                                      on_delivery=self._on_delivery)
                self.next_seq[p] = seq + 1
                with self.lock:
                    self.history.sent += 1
                p = (p + 1) % self.partitions
            except BufferError:
                pass  # queue full while a partition has no leader: wait for room
            self.producer.poll(self.interval)
        self.producer.poll(0)

    def acked(self) -> int:
        with self.lock:
            return self.history.acked_count()

    def acked_on(self, partition: int) -> int:
        with self.lock:
            return (len(self.history.acked[partition])
                    + len(self.history.acked_no_offset.get(partition, ())))

    def longest_gap(self, partition: int, since: float, until: float) -> float:
        """The longest time without an acknowledgement on ``partition`` within
        [since, until] (monotonic clock), counting from ``since``."""
        with self.lock:
            times = [t for t in self.ack_times[partition] if since <= t <= until]
        marks = [since, *times, until]
        return max(b - a for a, b in zip(marks, marks[1:]))

    def wait_progress(self, what: str, count: int, timeout: float, partition: int | None = None):
        """Waits until ``count`` more records are acknowledged (on ``partition`` if given)."""
        get = (lambda: self.acked_on(partition)) if partition is not None else self.acked
        start = get()
        deadline = time.monotonic() + timeout
        while get() < start + count:
            if self.fatal:
                raise AssertionError(f"producer failed fatally: {self.fatal}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: only {get() - start} of {count} acks in {timeout:.0f}s")
            time.sleep(0.05)

    def finish(self, timeout: float = 120) -> History:
        """Stops producing and waits for every outstanding record's outcome."""
        self.stopping.set()
        self.join(timeout=10)
        remaining = self.producer.flush(timeout)
        if remaining:
            raise AssertionError(f"{remaining} records still unacknowledged after {timeout:.0f}s")
        if self.fatal:
            raise AssertionError(f"producer failed fatally: {self.fatal}")
        return self.history


def read_all(bootstrap: str, topic: str, partitions: int, timeout: float = 60,
             ends: dict[int, int] | None = None) -> dict[int, list]:
    """Every record of every partition up to its high watermark: partition -> [(offset, value)].
    The high watermarks it read up to are left in ``ends`` when given."""
    c = Consumer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                  "group.id": f"faults-check-{time.time_ns()}", "enable.auto.commit": False,
                  "enable.partition.eof": True, "isolation.level": "read_uncommitted",
                  "logger": logging.getLogger("librdkafka")})
    try:
        ends = {} if ends is None else ends
        for p in range(partitions):
            # Right after a fault a partition may briefly have no reachable leader: retry.
            ends[p] = wait_until(f"the high watermark of {topic}-{p}", lambda p=p: (
                c.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] + 1), 60) - 1
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out: dict[int, list] = {p: [] for p in range(partitions)}
        done = {p for p in range(partitions) if ends[p] == 0}
        deadline = time.monotonic() + timeout
        while len(done) < partitions:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading back {topic}: reached {[len(v) for v in out.values()]}"
                                   f" of {ends}")
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if m.offset() >= ends[m.partition()]:
                        done.add(m.partition())
                    continue
                raise AssertionError(f"consumer error: {m.error()}")
            if m.offset() < ends[m.partition()]:
                out[m.partition()].append((m.offset(), m.value().decode()))
            if m.offset() + 1 >= ends[m.partition()]:
                done.add(m.partition())
        return out
    finally:
        c.close()


def read_committed(bootstrap: str, topic: str, partitions: int,
                   timeout: float = 90) -> dict[int, list]:
    """Every record a read_committed consumer sees, up to each partition's last stable
    offset: partition -> [(offset, value)]."""
    c = Consumer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                  "group.id": f"faults-committed-{time.time_ns()}", "enable.auto.commit": False,
                  "isolation.level": "read_committed", "enable.partition.eof": True,
                  "logger": logging.getLogger("librdkafka")})
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out: dict[int, list] = {p: [] for p in range(partitions)}
        eof: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(eof) < partitions:
            assert time.monotonic() < deadline, (
                f"reading {topic} read_committed: {[len(v) for v in out.values()]} records, "
                f"at the end of {sorted(eof)}")
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise AssertionError(f"consumer error: {m.error()}")
            eof.discard(m.partition())
            out[m.partition()].append((m.offset(), m.value().decode()))
        return out
    finally:
        c.close()


def check(history: History, log_contents: dict[int, list]) -> dict:
    """Asserts no loss, no duplicates, order kept and one writer per offset; returns counts."""
    problems: list[str] = list(history.duplicate_acks)
    if history.failed:
        problems.append(f"{len(history.failed)} records failed definitively, first: "
                        f"{history.failed[:3]}")
    stats = {"acked": history.acked_count(), "sent": history.sent, "in_log": 0,
             "unacked_in_log": 0}
    for p, acked in history.acked.items():
        records = log_contents.get(p, [])
        stats["in_log"] += len(records)
        by_offset = {}
        seen: dict[int, int] = {}
        last = -1
        for offset, value in records:
            part, seq = (int(x) for x in value.split("-"))
            if part != p:
                problems.append(f"p{p}@{offset}: value {value} belongs to partition {part}")
            if seq in seen:
                problems.append(f"p{p}: seq {seq} duplicated at offsets {seen[seq]} and {offset}")
            seen[seq] = offset
            if seq <= last:
                problems.append(f"p{p}@{offset}: seq {seq} after {last} (reordered)")
            last = max(last, seq)
            by_offset[offset] = seq
        for offset, seq in acked.items():
            if by_offset.get(offset) != seq:
                problems.append(f"p{p}: acknowledged seq {seq} at offset {offset} is lost "
                                f"(log has {by_offset.get(offset)!r} there)")
        no_offset = history.acked_no_offset.get(p, set())
        for seq in sorted(no_offset - set(seen)):
            problems.append(f"p{p}: seq {seq}, acknowledged without an offset, is lost")
        stats["acked_without_offset"] = stats.get("acked_without_offset", 0) + len(no_offset)
        stats["unacked_in_log"] += len(set(by_offset.values()) - set(acked.values()) - no_offset)
    if problems:
        shown = "\n  ".join(problems[:20])
        raise AssertionError(f"{len(problems)} problems in the history:\n  {shown}")
    return stats


def replica_batches(data_dir, topic: str, partition: int, below: int) -> list[tuple]:
    """(base offset, last offset, crc) of every batch that ends below ``below`` in one
    replica's on-disk log: the record batch header is fixed-size, so no record parsing."""
    import struct
    from pathlib import Path

    out = []
    pdir = Path(data_dir) / f"{topic}-{partition}"
    for seg in sorted(pdir.glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 27 <= len(data):
            base, length = struct.unpack_from(">qi", data, pos)
            if length <= 0 or pos + 12 + length > len(data):
                break  # preallocated or torn tail
            crc, = struct.unpack_from(">I", data, pos + 17)
            last = base + struct.unpack_from(">i", data, pos + 23)[0]
            if last < below:
                out.append((base, last, crc))
            pos += 12 + length
    return out


def check_converged(nodes, topic: str, partitions: int, high_watermarks: dict[int, int]) -> bool:
    """Every replica holds the same batches (offsets and CRCs) below the high watermark;
    raises AssertionError otherwise (so it can be polled with ``wait_until``)."""
    for p in range(partitions):
        hw = high_watermarks[p]
        logs = {n.id: replica_batches(n.data_dir, topic, p, hw) for n in nodes}
        reference_id, reference = next(iter(logs.items()))
        covered = reference[-1][1] + 1 if reference else 0
        assert covered == hw, f"replica {reference_id} of {topic}-{p} ends at {covered}, HW {hw}"
        for node_id, batches in logs.items():
            assert batches == reference, (
                f"{topic}-{p}: replica {node_id} differs from replica {reference_id} below "
                f"HW {hw}: first difference at batch "
                f"{next((i for i, (a, b) in enumerate(zip(batches, reference)) if a != b), min(len(batches), len(reference)))}")
    return True
