"""SIGSTOP a follower under a steady idempotent acks=all producer.

The paused follower stops fetching: the leaders drop it from their ISRs after
replica.lag.time.max.ms, writes continue with the two remaining in-sync replicas
(min.insync.replicas 2), and once SIGCONT lets it run again it catches up and rejoins every
ISR. No acknowledged record is lost, duplicated or reordered.
"""

from __future__ import annotations

from conftest import create_topic
from history import Workload, check, read_all
from netcluster import wait_until
from scenarios import leader_of, view, wait_in_sync

PARTITIONS = 3


def test_paused_follower_leaves_and_rejoins_the_isr(cluster):
    topic = "pause"
    create_topic(cluster, topic, PARTITIONS)
    w = Workload(cluster.bootstrap, topic, PARTITIONS)
    w.start()
    try:
        w.wait_progress("acks before the pause", 300, 60)
        # A follower of partition 0 that is not the active controller, so only replication is
        # disturbed (controller failover is the kill test's business).
        md = view(cluster, topic)
        p0 = md["partitions"][0]
        follower = next(r for r in p0["replicas"]
                        if r != p0["leader"] and r != md["controller"])
        cluster.nodes[follower].pause()
        wait_until(f"broker {follower} out of the ISR of partition 0",
                   lambda: follower not in view(cluster, topic, exclude={follower})
                   ["partitions"][0]["isr"], 30)
        # Writes go on without it, on every partition.
        w.wait_progress("acks with the follower paused", 500, 60)
        assert leader_of(cluster, topic, 0, exclude={follower}) != follower
        cluster.nodes[follower].resume()
        wait_in_sync(cluster, topic, follower)
        w.wait_progress("acks after the follower is back", 300, 60)
        history = w.finish()
    finally:
        w.stopping.set()
    check(history, read_all(cluster.bootstrap, topic, PARTITIONS))


def test_paused_leader_is_deposed_and_follows(cluster):
    """SIGSTOP a leader: it is fenced and replaced; when it runs again it finds itself deposed,
    truncates anything it had not committed and follows the new leader."""
    topic = "pause-leader"
    create_topic(cluster, topic, PARTITIONS)
    w = Workload(cluster.bootstrap, topic, PARTITIONS)
    w.start()
    try:
        w.wait_progress("acks before the pause", 300, 60)
        old = leader_of(cluster, topic, 0)
        cluster.nodes[old].pause()
        wait_until("a new leader for partition 0", lambda: (
            leader_of(cluster, topic, 0, exclude={old}) not in (old, -1)), 30)
        w.wait_progress("acks from the new leader", 300, 60, partition=0)
        cluster.nodes[old].resume()
        wait_in_sync(cluster, topic, old, timeout=90)
        w.wait_progress("acks after the old leader is back", 300, 60)
        history = w.finish()
    finally:
        w.stopping.set()
    check(history, read_all(cluster.bootstrap, topic, PARTITIONS))
