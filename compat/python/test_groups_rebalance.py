"""Consumer groups: no record lost or processed twice across a series of rebalances.

A producer thread writes numbered records to a 4-partition topic while members join and
leave (graceful close).  Every member appends (partition, offset, value) of what it processed
to a shared ledger, commits synchronously in its revocation callback (on_revoke /
on_partitions_revoked) and before it leaves.  At the end the ledger must cover every produced
record exactly once, there must be no failed commit, and the group's committed offsets must be
the log end offsets.

Variants: confluent-kafka with cooperative-sticky (incremental rebalances) and with range
(eager), kafka-python with roundrobin (eager).
"""

from __future__ import annotations

import threading
import time

import pytest

from compat_util import unique_topic, wait_until
from group_util import (GROUP_BROKER_SETTINGS, Ledger, Member, check_exactly_once, ck_base,
                        create_topic, end_offsets, make_client, wait_for_distribution)

TOTAL = 3000


class NumberedProducer(threading.Thread):
    """Writes values "0".."TOTAL-1" (keyed, so spread over partitions), paced so the writing
    overlaps the rebalances; records what the broker acknowledged."""

    def __init__(self, bootstrap, topic, total=TOTAL, per_tick=20, tick=0.05):
        super().__init__(name="numbered-producer", daemon=True)
        self.bootstrap, self.topic, self.total = bootstrap, topic, total
        self.per_tick, self.tick = per_tick, tick
        self.acked: list[tuple[int, int, str]] = []
        self.errors: list = []
        self.done = threading.Event()

    def run(self):
        from confluent_kafka import Producer
        try:
            p = Producer({**ck_base(self.bootstrap), "acks": "all", "linger.ms": 5})

            def cb(err, msg):
                if err is not None:
                    self.errors.append(err)
                else:
                    self.acked.append((msg.partition(), msg.offset(), msg.value().decode()))
            for i in range(self.total):
                p.produce(self.topic, key=str(i).encode(), value=str(i).encode(), on_delivery=cb)
                if i % self.per_tick == self.per_tick - 1:
                    p.poll(0)
                    time.sleep(self.tick)  # pacing only: spreads the writes over the test
            left = p.flush(30)
            if left:
                self.errors.append(f"{left} records unflushed")
        except BaseException as e:  # noqa: BLE001
            self.errors.append(e)
        finally:
            self.done.set()


VARIANTS = [
    pytest.param("ck", "cooperative-sticky", id="confluent-cooperative-sticky"),
    pytest.param("ck", "range", id="confluent-range"),
    pytest.param("kp", "roundrobin", id="kafka-python-roundrobin"),
]


@pytest.mark.parametrize("kind,strategy", VARIANTS)
def test_every_record_once_across_rebalances(broker_factory, kind, strategy):
    b = broker_factory(GROUP_BROKER_SETTINGS)
    topic, group = unique_topic("eos"), unique_topic("grp")
    create_topic(b.bootstrap, topic, 4)
    ledger = Ledger()
    live: dict[str, Member] = {}
    everyone: list[Member] = []
    prod = NumberedProducer(b.bootstrap, topic)

    def join(name):
        m = Member(kind, b.bootstrap, group, topic, name, ledger=ledger, strategy=strategy,
                   session_ms=10000)
        m.start()
        live[name] = m
        everyone.append(m)

    def leave(name):
        live.pop(name).leave()

    def settle(sizes, what):
        wait_for_distribution(list(live.values()), sizes, timeout=60, what=what)
        # and the group makes progress in this configuration (while there is input)
        n0 = len(ledger.snapshot())
        wait_until(lambda: prod.done.is_set() or len(ledger.snapshot()) > n0 + 20, 30,
                   f"progress after {what}")

    try:
        join("a")
        wait_for_distribution(list(live.values()), [4], timeout=60, what="a alone")
        prod.start()
        settle([4], "a alone, producing")
        join("b")
        settle([2, 2], "b joined")
        join("c")
        settle([2, 1, 1], "c joined")
        leave("a")
        settle([2, 2], "a left")
        join("d")
        settle([2, 1, 1], "d joined")
        leave("b")
        settle([2, 2], "b left")
        join("e")
        settle([2, 1, 1], "e joined")
        leave("c")
        settle([2, 2], "c left")

        assert prod.done.wait(60), "producer did not finish"
        assert not prod.errors, f"producer errors: {prod.errors[:3]}"
        assert len(prod.acked) == TOTAL
        want = {r[2] for r in prod.acked}
        wait_until(lambda: ledger.values() >= want, 60,
                   f"the remaining members to process all {TOTAL} records")
        for name in list(live):
            leave(name)
    finally:
        for m in list(live.values()):
            if m.is_alive():
                m.leave()
        if prod.is_alive():
            prod.join(60)

    rows = ledger.snapshot()
    problems = {m.member_name: m.commit_errors for m in everyone if m.commit_errors}
    check_exactly_once(rows, prod.acked)
    assert not problems, f"failed commits: {problems}"
    for m in everyone:
        assert not m.errors, f"member {m.member_name}: {m.errors}"

    # what the group committed is exactly where it stopped: the end of every partition
    ends = end_offsets(b.bootstrap, topic)
    c = make_client(kind, b.bootstrap, group, topic)
    try:
        assert c.committed(range(4)) == ends
    finally:
        c.close()
