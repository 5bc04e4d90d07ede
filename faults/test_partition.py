"""Cut the leader of a partition off from the other brokers (clients still reach it).

The isolated leader can no longer replicate, so it cannot acknowledge acks=all writes; nor can
it shrink its ISR, since that goes through the metadata quorum it is cut off from. The
majority side fences it after broker.session.timeout.ms and elects another in-sync replica,
which takes the writes. So at most one leader acknowledges writes for a partition at any time.
After healing, the old leader truncates what it appended but never committed, follows the
new leader and rejoins the ISR; the checker finds every acknowledged record exactly once,
in order, at its acknowledged offset.
"""

from __future__ import annotations

import logging

import pytest

from conftest import create_topic
from history import Workload, check, check_converged, read_all
from netcluster import wait_until
from scenarios import leader_of, view, wait_in_sync

PARTITIONS = 3
log = logging.getLogger("faults")


@pytest.mark.parametrize("victim", ["partition-leader", "controller"])
def test_isolated_broker_is_replaced_and_converges(cluster, victim):
    topic = "split"
    create_topic(cluster, topic, PARTITIONS)
    w = Workload(cluster.bootstrap, topic, PARTITIONS)
    w.start()
    try:
        w.wait_progress("acks before the cut", 300, 60)
        md = view(cluster, topic)
        old = md["partitions"][0]["leader"] if victim == "partition-leader" else md["controller"]
        led = [p for p, s in md["partitions"].items() if s["leader"] == old]
        cluster.net.isolate(old)
        log.info("isolated broker %d (%s), leader of %s (%d acked)", old, victim, led, w.acked())
        wait_until("the majority to elect new leaders", lambda: all(
            leader_of(cluster, topic, p, exclude={old}) not in (old, -1) for p in led), 30)
        wait_until("a new active controller", lambda: view(
            cluster, topic, exclude={old})["controller"] not in (old, -1), 30)
        for p in led:
            w.wait_progress(f"acks on partition {p} from its new leader", 300, 90, partition=p)
        cluster.net.heal()
        log.info("healed (%d acked)", w.acked())
        wait_in_sync(cluster, topic, old, timeout=90)
        w.wait_progress("acks after healing", 300, 60)
        history = w.finish()
    finally:
        w.stopping.set()
    hws: dict[int, int] = {}
    stats = check(history, read_all(cluster.bootstrap, topic, PARTITIONS, ends=hws))
    # The deposed leader truncated what it never committed: all three logs are the same.
    wait_until("replicas to converge", lambda: check_converged(
        cluster.nodes.values(), topic, PARTITIONS, hws), 30)
    log.info("partition scenario: %s", stats)

