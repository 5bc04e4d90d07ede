"""Cut the leader of a partition off from the other brokers (clients still reach it).

The isolated leader can no longer replicate, so it cannot acknowledge acks=all writes; nor can
it shrink its ISR, since that goes through the metadata quorum it is cut off from. The
majority side fences it after broker.session.timeout.ms and elects another in-sync replica,
which takes the writes. So at most one leader acknowledges writes for a partition at any time.
The isolated broker, its controller session lapsed and its followers silent, steps down too:
its own Metadata answers stop naming it leader and its pending writes fail at once, so
clients move to the new leaders instead of waiting out their timeouts against it.
After healing, the old leader truncates what it appended but never committed, follows the
new leader and rejoins the ISR; the checker finds every acknowledged record exactly once,
in order, at its acknowledged offset.

Each case runs ``SPATE_FAULT_ISOLATIONS`` rounds (default 1; the long form is 10) and logs,
per partition, the longest time without an acknowledgement while the broker was cut off.
"""

from __future__ import annotations

import logging
import os
import time

import pytest

from conftest import create_topic
from history import Workload, check, check_converged, read_all
from netcluster import metadata_from, wait_until
from scenarios import leader_of, view, wait_in_sync

PARTITIONS = 3
ROUNDS = int(os.environ.get("SPATE_FAULT_ISOLATIONS", "1"))
log = logging.getLogger("faults")


@pytest.mark.parametrize("victim", ["partition-leader", "controller"])
def test_isolated_broker_is_replaced_and_converges(cluster, victim):
    topic = "split"
    create_topic(cluster, topic, PARTITIONS)
    w = Workload(cluster.bootstrap, topic, PARTITIONS)
    w.start()
    try:
        w.wait_progress("acks before the cut", 300, 60)
        for round_no in range(1, ROUNDS + 1):
            _isolate_and_heal(cluster, w, topic, victim, round_no)
        history = w.finish()
    finally:
        w.stopping.set()
    hws: dict[int, int] = {}
    stats = check(history, read_all(cluster.bootstrap, topic, PARTITIONS, ends=hws))
    # The deposed leader truncated what it never committed: all three logs are the same.
    wait_until("replicas to converge", lambda: check_converged(
        cluster.nodes.values(), topic, PARTITIONS, hws), 30)
    log.info("partition scenario: %s", stats)


def _isolate_and_heal(cluster, w: Workload, topic: str, victim: str, round_no: int):
    md = view(cluster, topic)
    old = md["partitions"][0]["leader"] if victim == "partition-leader" else md["controller"]
    led = [p for p, s in md["partitions"].items() if s["leader"] == old]
    cluster.net.isolate(old)
    cut_at = time.monotonic()
    log.info("round %d: isolated broker %d (%s), leader of %s (%d acked)",
             round_no, old, victim, led, w.acked())
    wait_until("the majority to elect new leaders", lambda: all(
        leader_of(cluster, topic, p, exclude={old}) not in (old, -1) for p in led), 30)
    wait_until("a new active controller", lambda: view(
        cluster, topic, exclude={old})["controller"] not in (old, -1), 30)
    # The deposed leader, asked directly, no longer claims what it cannot serve.
    isolated = cluster.nodes[old].addr
    wait_until(f"broker {old}, cut off, to stop naming itself leader", lambda: all(
        metadata_from(isolated, topic)["partitions"][p]["leader"] != old for p in led), 30)
    for p in range(PARTITIONS):
        w.wait_progress(f"acks on partition {p} while broker {old} is cut off", 300, 90,
                        partition=p)
    gaps = {p: round(w.longest_gap(p, cut_at, time.monotonic()), 2) for p in range(PARTITIONS)}
    log.info("round %d: longest time without acks per partition while broker %d was cut off "
             "(it led %s): %s s", round_no, old, led, gaps)
    cluster.net.heal()
    log.info("round %d: healed (%d acked)", round_no, w.acked())
    wait_in_sync(cluster, topic, old, timeout=90)
    w.wait_progress("acks after healing", 300, 60)
