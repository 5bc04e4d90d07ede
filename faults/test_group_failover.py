"""kill -9 the group coordinator of a consumer group while it consumes and commits.

`__consumer_offsets` is replicated (RF 3 here), so the coordinator's partition gets a new
leader, which loads the group's offsets and coordinates it; the consumer finds it through
FindCoordinator, rejoins and goes on. Every commit acknowledged before the kill is still
there, and the group reads every record (at least once: nothing is skipped).
"""

from __future__ import annotations

import os
import time


from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import create_topic
from history import Workload
from netcluster import wait_until

PARTITIONS = 3
GROUP = "failover-group"
# librdkafka debug contexts for the consumer (e.g. "cgrp,fetch,topic"), printed on failure.
DEBUG = os.environ.get("SPATE_FAULT_RDKAFKA_DEBUG")


def _commit(c: Consumer, topic: str, processed: dict[int, int]) -> list[TopicPartition]:
    """Commits what this consumer has processed (next offset per partition), explicitly: the
    client's own positions lag behind after a rebalance until it fetches again, and
    librdkafka's stored offsets may be dropped when a leader changes. Raises if any partition
    failed."""
    offsets = [TopicPartition(topic, p, o) for p, o in sorted(processed.items())]
    done = c.commit(offsets=offsets, asynchronous=False) if offsets else []
    failed = [tp for tp in done if tp.error is not None]
    if failed:
        raise KafkaException(failed[0].error)
    return done


def _try_commit(c: Consumer, topic: str, processed: dict[int, int]) -> bool:
    try:
        _commit(c, topic, processed)
        return True
    except KafkaException:
        return False


def _coordinator(bootstrap: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    desc = admin.describe_consumer_groups([GROUP])[GROUP].result(timeout=10)
    return desc.coordinator.id


def test_group_survives_its_coordinator_being_killed(cluster):
    topic = "group-failover"
    create_topic(cluster, topic, PARTITIONS)
    w = Workload(cluster.bootstrap, topic, PARTITIONS)
    w.start()
    try:
        w.wait_progress("records to consume", 3000, 60)
        history = w.finish()
    finally:
        w.stopping.set()
    produced = {(p, seq) for p, acked in history.acked.items() for seq in acked.values()}

    c = Consumer({"bootstrap.servers": cluster.bootstrap, "broker.address.family": "v4",
                  "group.id": GROUP, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 500,
                  **({"debug": DEBUG} if DEBUG else {})})
    seen: set[tuple[int, int]] = set()
    committed_before_kill: dict[int, int] = {}
    killed = None
    killed_at = time.monotonic()
    next_commit = 200
    processed: dict[int, int] = {}  # partition -> next offset to read
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 120
        while seen != produced:
            assert time.monotonic() < deadline, f"consumed {len(seen)} of {len(produced)}"
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            p, seq = (int(x) for x in m.value().decode().split("-"))
            seen.add((p, seq))
            processed[m.partition()] = max(processed.get(m.partition(), 0), m.offset() + 1)
            if len(seen) >= next_commit:
                next_commit = len(seen) + 200
                try:
                    for tp in _commit(c, topic, processed):
                        if killed is None:
                            committed_before_kill[tp.partition] = tp.offset
                except KafkaException:
                    pass  # coordinator moving: the next commit goes to the new one
            if killed is None and len(seen) >= len(produced) // 3 and committed_before_kill:
                killed = _coordinator(cluster.bootstrap)
                cluster.nodes[killed].kill9()
                killed_at = time.monotonic()
                print(f"killed coordinator {killed} after {len(seen)} records")
        print(f"consumed everything {time.monotonic() - killed_at:.1f} s after the kill")
        assert wait_until("a final commit", lambda: _try_commit(c, topic, processed), 60)
    finally:
        c.close()
    assert killed is not None
    survivors = ",".join(n.bootstrap for n in cluster.nodes.values() if n.id != killed)
    try:
        wait_until("a new coordinator", lambda: _coordinator(survivors) not in (killed, -1), 30)
    except TimeoutError:
        from netcluster import metadata_from
        for n in cluster.nodes.values():
            if n.id != killed:
                md = metadata_from(n.addr, "__consumer_offsets")
                print(f"broker {n.id} sees __consumer_offsets", md)
        raise

    # A fresh member of the group sees every partition committed to its end.
    check = Consumer({"bootstrap.servers": survivors, "broker.address.family": "v4",
                      "group.id": GROUP, "enable.auto.commit": False})
    try:
        ends = {p: len(history.acked[p]) + len(history.acked_no_offset.get(p, ()))
                for p in range(PARTITIONS)}
        got = wait_until("committed offsets", lambda: {
            tp.partition: tp.offset for tp in check.committed(
                [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=5)}, 30)
    finally:
        check.close()
    assert got == ends
    for p, offset in committed_before_kill.items():
        assert got[p] >= offset
