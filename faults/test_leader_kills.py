"""kill -9 the leader of a partition under a steady idempotent acks=all producer, many times.

RF 3, min.insync.replicas 2. Each round: wait for acks, SIGKILL the partition's leader, wait
until another in-sync replica leads and acks flow again, restart the killed broker and wait
until it is back in every ISR (so the next kill still leaves two in-sync replicas). The
partition whose leader is killed rotates, so every broker is killed, the controller too.
At the end the checker reads the whole log: no acknowledged record lost, none duplicated,
none reordered.
"""

from __future__ import annotations

import logging
import os

from conftest import create_topic
from history import Workload, check, read_all
from netcluster import wait_until
from scenarios import leader_of, wait_in_sync

KILLS = int(os.environ.get("SPATE_FAULT_KILLS", "20"))
PARTITIONS = 3
log = logging.getLogger("faults")


def test_acks_all_survives_leader_kills(cluster):
    topic = "kills"
    create_topic(cluster, topic, PARTITIONS)
    w = Workload(cluster.bootstrap, topic, PARTITIONS)
    w.start()
    try:
        for round_no in range(KILLS):
            p = round_no % PARTITIONS
            w.wait_progress(f"round {round_no}: acks before the kill", 100, 60, partition=p)
            leader = leader_of(cluster, topic, p)
            cluster.nodes[leader].kill9()
            log.info("round %d: killed broker %d, leader of partition %d (%d acked so far)",
                     round_no, leader, p, w.acked())
            wait_until(f"round {round_no}: a new leader for partition {p}",
                       lambda: leader_of(cluster, topic, p, exclude={leader}) not in (leader, -1),
                       30)
            w.wait_progress(f"round {round_no}: acks after the kill", 100, 60, partition=p)
            cluster.nodes[leader].start()
            cluster.wait_ready([leader])
            wait_in_sync(cluster, topic, leader)
        history = w.finish()
    finally:
        w.stopping.set()
    stats = check(history, read_all(cluster.bootstrap, topic, PARTITIONS))
    log.info("%d kills: %s", KILLS, stats)
    assert stats["acked"] > KILLS * 200
