"""Helpers for the consumer-group suites (test_groups_*.py).

One interface over two clients so every group test runs against confluent-kafka (librdkafka)
and kafka-python:

- ``make_client(kind, bootstrap, group, topic, ...)`` -> a subscribed consumer adapter with
  ``poll()``, ``assignment()``, ``commit()``, ``committed()``, ``close()``.
- ``Member``: a thread that owns one adapter, polls it, records every record it processed
  ((partition, offset, value)) into a shared ``Ledger``, keeps a snapshot of its assignment,
  commits synchronously on revocation and before leaving.
- ``SubprocessMember``: the same loop in a child process (``python group_util.py member ...``)
  so a test can SIGKILL it; it prints ``ASSIGNED 0,1`` lines as its assignment changes.

Nothing here sleeps for correctness: every wait is a deadline poll (``compat_util.wait_until``).
Set SPATE_CLIENT_DEBUG=cgrp,protocol (librdkafka debug contexts; any value enables kafka-python
DEBUG logging) to get client logs.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from compat_util import wait_until  # noqa: E402

CLIENT_DEBUG = os.environ.get("SPATE_CLIENT_DEBUG")
# Broker settings every group test uses: no 3 s initial join delay (Kafka's default), so a
# lone member gets its assignment at once.  Session timeouts below stay >= the default
# group.min.session.timeout.ms (6000).
GROUP_BROKER_SETTINGS = {"group.initial.rebalance.delay.ms": "0"}
HEARTBEAT_MS = 500
OP_TIMEOUT = 15

if CLIENT_DEBUG:
    logging.getLogger("kafka").setLevel(logging.DEBUG)

log = logging.getLogger("group_util")


# ------------------------------------------------------------------------------------------
# topic / producer helpers (confluent-kafka: the producer is not what these suites test)
# ------------------------------------------------------------------------------------------

def ck_base(bootstrap: str) -> dict:
    c = {"bootstrap.servers": bootstrap, "broker.address.family": "v4",
         "socket.timeout.ms": 10000, "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500}
    if CLIENT_DEBUG:
        c["debug"] = CLIENT_DEBUG
    return c


def create_topic(bootstrap: str, name: str, partitions: int = 4) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient(ck_base(bootstrap))
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                         operation_timeout=10, request_timeout=OP_TIMEOUT)
    fs[name].result(timeout=OP_TIMEOUT + 5)

    def ready():
        md = a.list_topics(name, timeout=5)
        t = md.topics.get(name)
        return (t is not None and t.error is None and len(t.partitions) == partitions
                and all(p.leader >= 0 for p in t.partitions.values()))
    wait_until(ready, 20, f"metadata for {name} with {partitions} partitions")


def produce_numbered(bootstrap: str, topic: str, start: int, count: int,
                     partition: int | None = None) -> list[tuple[int, int, str]]:
    """Produce values str(start..start+count-1); returns [(partition, offset, value)] acked."""
    from confluent_kafka import Producer
    p = Producer({**ck_base(bootstrap), "acks": "all", "linger.ms": 5})
    acked: list[tuple[int, int, str]] = []
    errors: list = []

    def cb(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked.append((msg.partition(), msg.offset(), msg.value().decode()))
    for i in range(start, start + count):
        kw = {} if partition is None else {"partition": partition}
        p.produce(topic, value=str(i).encode(), key=str(i).encode(), on_delivery=cb, **kw)
        p.poll(0)
    left = p.flush(30)
    assert left == 0 and not errors, f"produce failed: {left} unflushed, errors {errors[:3]}"
    return acked


def end_offsets(bootstrap: str, topic: str, partitions: int = 4) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({**ck_base(bootstrap), "group.id": "spate-compat-end-offsets"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)}
    finally:
        c.close()


# ------------------------------------------------------------------------------------------
# client adapters
# ------------------------------------------------------------------------------------------

class CkClient:
    """confluent-kafka Consumer, subscribed, manual commits."""

    kind = "ck"

    def __init__(self, bootstrap, group, topic, *, strategy="range", session_ms=10000,
                 instance_id=None, on_assign=None, on_revoke=None, extra=None):
        from confluent_kafka import Consumer
        self.topic = topic
        conf = {**ck_base(bootstrap), "group.id": group, "enable.auto.commit": False,
                "auto.offset.reset": "earliest", "session.timeout.ms": session_ms,
                "heartbeat.interval.ms": HEARTBEAT_MS, "partition.assignment.strategy": strategy,
                "fetch.wait.max.ms": 100, "enable.partition.eof": False}
        if instance_id:
            conf["group.instance.id"] = instance_id
        conf.update(extra or {})
        self.c = Consumer(conf)
        self._on_assign = on_assign
        self._on_revoke = on_revoke

        def assigned(consumer, parts):
            if self._on_assign:
                self._on_assign({tp.partition for tp in parts})

        def revoked(consumer, parts):
            if self._on_revoke:
                self._on_revoke({tp.partition for tp in parts}, False)

        def lost(consumer, parts):
            if self._on_revoke:
                self._on_revoke({tp.partition for tp in parts}, True)
        self.c.subscribe([topic], on_assign=assigned, on_revoke=revoked, on_lost=lost)

    def poll(self, timeout: float = 0.2) -> list[tuple[int, int, str]]:
        out = []
        for m in self.c.consume(num_messages=200, timeout=timeout):
            if m.error():
                raise RuntimeError(f"consume error: {m.error()}")
            out.append((m.partition(), m.offset(), m.value().decode()))
        return out

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.c.assignment()}

    def commit(self, offsets: dict[int, int], metadata: str | None = None) -> None:
        from confluent_kafka import KafkaException, TopicPartition
        if not offsets:
            return
        tps = [TopicPartition(self.topic, p, o, metadata=metadata) if metadata is not None
               else TopicPartition(self.topic, p, o) for p, o in offsets.items()]
        res = self.c.commit(offsets=tps, asynchronous=False)
        bad = [tp for tp in (res or []) if tp.error is not None]
        if bad:
            raise KafkaException(bad[0].error)

    def committed(self, partitions) -> dict[int, int | None]:
        from confluent_kafka import TopicPartition
        res = self.c.committed([TopicPartition(self.topic, p) for p in partitions], timeout=10)
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in res}

    def close(self) -> None:
        self.c.close()


class KpClient:
    """kafka-python KafkaConsumer, subscribed with a ConsumerRebalanceListener, manual commits."""

    kind = "kp"

    def __init__(self, bootstrap, group, topic, *, strategy="range", session_ms=10000,
                 instance_id=None, on_assign=None, on_revoke=None, extra=None):
        from kafka import ConsumerRebalanceListener, KafkaConsumer
        from kafka.coordinator.assignors.range import RangePartitionAssignor
        from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
        assignor = {"range": RangePartitionAssignor,
                    "roundrobin": RoundRobinPartitionAssignor}[strategy]
        self.topic = topic
        cfg = dict(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                   auto_offset_reset="earliest", session_timeout_ms=session_ms,
                   heartbeat_interval_ms=HEARTBEAT_MS, partition_assignment_strategy=[assignor],
                   fetch_max_wait_ms=100, request_timeout_ms=max(30000, session_ms + 5000),
                   reconnect_backoff_ms=50, reconnect_backoff_max_ms=500,
                   value_deserializer=lambda b: b.decode())
        if instance_id:
            cfg["group_instance_id"] = instance_id
        cfg.update(extra or {})
        from kafka.errors import NoBrokersAvailable

        def construct():
            try:
                return KafkaConsumer(**cfg)
            except NoBrokersAvailable:  # a just-restarted broker may still refuse/reset
                return None
        self.c = wait_until(construct, 30, "kafka-python KafkaConsumer to bootstrap",
                            interval=0.2)

        class L(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                if on_revoke:
                    on_revoke({tp.partition for tp in revoked}, False)

            def on_partitions_assigned(self, assigned):
                if on_assign:
                    on_assign({tp.partition for tp in assigned})
        self.c.subscribe(topics=[topic], listener=L())

    def poll(self, timeout: float = 0.2) -> list[tuple[int, int, str]]:
        out = []
        for tp, recs in self.c.poll(timeout_ms=int(timeout * 1000), max_records=200).items():
            for r in recs:
                out.append((tp.partition, r.offset, r.value))
        return out

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.c.assignment()}

    def commit(self, offsets: dict[int, int], metadata: str | None = None) -> None:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata
        if not offsets:
            return
        self.c.commit({TopicPartition(self.topic, p): OffsetAndMetadata(o, metadata or "", -1)
                       for p, o in offsets.items()})

    def committed(self, partitions) -> dict[int, int | None]:
        from kafka import TopicPartition
        return {p: self.c.committed(TopicPartition(self.topic, p)) for p in partitions}

    def close(self) -> None:
        self.c.close(autocommit=False)


CLIENTS = {"ck": CkClient, "kp": KpClient}


def make_client(kind: str, bootstrap: str, group: str, topic: str, **kw):
    return CLIENTS[kind](bootstrap, group, topic, **kw)


# ------------------------------------------------------------------------------------------
# threaded members and the processed-record ledger
# ------------------------------------------------------------------------------------------

class Ledger:
    """Every record any member processed: (member, partition, offset, value)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows: list[tuple[str, int, int, str]] = []

    def add(self, member: str, recs) -> None:
        with self.lock:
            self.rows.extend((member, p, o, v) for p, o, v in recs)

    def snapshot(self) -> list[tuple[str, int, int, str]]:
        with self.lock:
            return list(self.rows)

    def values(self) -> set[str]:
        with self.lock:
            return {r[3] for r in self.rows}


def check_exactly_once(rows, produced: list[tuple[int, int, str]]) -> None:
    """The consumed log covers every produced record exactly once (by value and position)."""
    want = {v: (p, o) for p, o, v in produced}
    seen: dict[str, list] = {}
    for m, p, o, v in rows:
        seen.setdefault(v, []).append((m, p, o))
    missing = sorted(set(want) - set(seen), key=int)
    dups = {v: s for v, s in seen.items() if len(s) > 1}
    unknown = sorted(set(seen) - set(want))
    wrong_pos = {v: (s, want[v]) for v, s in seen.items()
                 if v in want and any((p, o) != want[v] for _, p, o in s)}
    msg = []
    if missing:
        msg.append(f"{len(missing)} produced records never processed, e.g. "
                   f"{[(v, want[v]) for v in missing[:10]]}")
    if dups:
        ex = sorted(dups.items(), key=lambda kv: int(kv[0]))[:10]
        msg.append(f"{len(dups)} records processed more than once, e.g. {ex}")
    if unknown:
        msg.append(f"{len(unknown)} processed values were never produced: {unknown[:10]}")
    if wrong_pos:
        msg.append(f"{len(wrong_pos)} records seen at another partition/offset than acked: "
                   f"{list(wrong_pos.items())[:5]}")
    assert not msg, "; ".join(msg)


class Member(threading.Thread):
    """One group member polling in its own thread.

    - ``snapshot``: the partitions it held after its last poll (None before the first poll).
    - processes every record (ledger), tracks next offset per partition,
    - ``commit_on_revoke``: synchronously commits processed offsets of revoked partitions,
    - ``leave()``: stops polling, commits what it processed (``commit_on_leave``), close().
    """

    def __init__(self, kind: str, bootstrap: str, group: str, topic: str, name: str,
                 ledger: Ledger | None = None, commit_on_revoke: bool = True,
                 commit_on_leave: bool = True, **client_kw):
        super().__init__(name=f"member-{name}", daemon=True)
        self.kind, self.bootstrap, self.group, self.topic = kind, bootstrap, group, topic
        self.member_name = name
        self.ledger = ledger or Ledger()
        self.commit_on_revoke = commit_on_revoke
        self.commit_on_leave = commit_on_leave
        self.client_kw = client_kw
        self.snapshot: frozenset[int] | None = None
        self.next_offset: dict[int, int] = {}
        self.events: list[tuple[float, str, tuple]] = []
        self.errors: list[BaseException] = []
        self.commit_errors: list[str] = []
        self._stop_evt = threading.Event()
        self.closed = threading.Event()
        self.client = None

    # callbacks run inside poll(), on this thread
    def _assigned(self, parts):
        self.events.append((time.monotonic(), "assign", tuple(sorted(parts))))

    def _revoked(self, parts, lost):
        self.events.append((time.monotonic(), "lost" if lost else "revoke", tuple(sorted(parts))))
        offs = {p: self.next_offset[p] for p in parts if p in self.next_offset}
        if self.commit_on_revoke and not lost and offs:
            try:
                self.client.commit(offs)
            except Exception as e:  # noqa: BLE001 - recorded, asserted by the tests
                self.commit_errors.append(f"commit on revoke of {offs}: {e!r}")
        for p in parts:
            self.next_offset.pop(p, None)

    def run(self):
        try:
            self.client = make_client(self.kind, self.bootstrap, self.group, self.topic,
                                      on_assign=self._assigned, on_revoke=self._revoked,
                                      **self.client_kw)
            while not self._stop_evt.is_set():
                recs = self.client.poll(0.2)
                if recs:
                    self.ledger.add(self.member_name, recs)
                    for p, o, _ in recs:
                        self.next_offset[p] = o + 1
                self.snapshot = frozenset(self.client.assignment())
            if self.commit_on_leave and self.next_offset:
                try:
                    self.client.commit(dict(self.next_offset))
                except Exception as e:  # noqa: BLE001
                    self.commit_errors.append(f"commit on leave of {self.next_offset}: {e!r}")
            self.client.close()
            self.snapshot = frozenset()
        except BaseException as e:  # noqa: BLE001
            self.errors.append(e)
            log.exception("member %s failed", self.member_name)
        finally:
            self.closed.set()

    def leave(self, timeout: float = 30) -> None:
        self._stop_evt.set()
        self.join(timeout)
        assert not self.is_alive(), f"member {self.member_name} did not close within {timeout}s"
        assert not self.errors, f"member {self.member_name} failed: {self.errors!r}"


def wait_for_distribution(members, expected_sizes, partitions: int = 4, timeout: float = 45,
                          what: str = ""):
    """Wait until the live members' assignments are disjoint, cover all partitions, and have
    the expected sizes (as a sorted list), on two consecutive looks.  Returns {name: set}."""
    last: dict = {}
    agreed = {"n": 0}

    def ok():
        for m in members:
            if m.errors:
                raise AssertionError(f"member {m.member_name} failed: {m.errors!r}")
        snaps = {m.member_name: m.snapshot for m in members}
        last.clear()
        last.update(snaps)
        if any(s is None for s in snaps.values()):
            agreed["n"] = 0
            return False
        allp = [p for s in snaps.values() for p in s]
        good = (sorted(allp) == list(range(partitions))
                and sorted(len(s) for s in snaps.values()) == sorted(expected_sizes))
        agreed["n"] = agreed["n"] + 1 if good else 0
        return snaps if agreed["n"] >= 2 else False
    try:
        return wait_until(ok, timeout, f"assignment sizes {sorted(expected_sizes)} {what}",
                          interval=0.1)
    except AssertionError as e:
        raise AssertionError(f"{e}; last snapshots: {last}; events: "
                             f"{ {m.member_name: m.events for m in members} }") from None


# ------------------------------------------------------------------------------------------
# a member in a child process (to SIGKILL it)
# ------------------------------------------------------------------------------------------

class SubprocessMember:
    def __init__(self, kind, bootstrap, group, topic, session_ms=6000, strategy="range",
                 log_path: Path | None = None):
        self.lines: list[str] = []
        self.assignment: frozenset[int] | None = None
        args = [sys.executable, str(HERE / "group_util.py"), "member", kind, bootstrap, group,
                topic, str(session_ms), strategy]
        self.log_path = log_path
        err = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err,
                                     stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            self.lines.append(line)
            if line.startswith("ASSIGNED"):
                parts = line[len("ASSIGNED"):].strip()
                self.assignment = frozenset(int(x) for x in parts.split(",") if x)

    def kill9(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def stderr_tail(self) -> str:
        if not self.log_path:
            return ""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""


def _member_main(argv):
    kind, bootstrap, group, topic, session_ms, strategy = argv
    logging.basicConfig(level=logging.DEBUG if CLIENT_DEBUG else logging.WARNING,
                        stream=sys.stderr)
    c = make_client(kind, bootstrap, group, topic, strategy=strategy, session_ms=int(session_ms))
    last = None
    while True:
        c.poll(0.2)
        a = tuple(sorted(c.assignment()))
        if a != last:
            print("ASSIGNED " + ",".join(map(str, a)), flush=True)
            last = a


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "member":
        _member_main(sys.argv[2:])
    else:
        print(json.dumps({"usage": "group_util.py member KIND BOOTSTRAP GROUP TOPIC SESSION_MS "
                                   "STRATEGY"}))
        sys.exit(2)
