"""Whole-cluster events: the controller dies, the cluster restarts, a broker comes back."""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from conftest import create_topic
from history import Workload, check, check_converged, read_all
from netcluster import metadata_from, wait_until
from scenarios import leader_of, view, wait_in_sync

PARTITIONS = 3
log = logging.getLogger("faults")


def _admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})


def test_controller_kill_elects_a_new_one_and_metadata_changes_continue(cluster):
    create_topic(cluster, "before", PARTITIONS)
    controller = view(cluster, "before")["controller"]
    cluster.nodes[controller].kill9()
    survivors = ",".join(n.bootstrap for n in cluster.nodes.values() if n.id != controller)
    wait_until("a new active controller", lambda: view(
        cluster, "before", exclude={controller})["controller"] not in (controller, -1), 30)
    admin = _admin(survivors)
    # Metadata changes go through the new controller: a topic, more partitions.
    admin.create_topics([NewTopic("after", 2, 2)])["after"].result(timeout=30)
    admin.create_partitions([NewPartitions("before", 5)])["before"].result(timeout=30)
    cluster.nodes[controller].start()
    cluster.wait_ready([controller])
    # The old controller, now a follower of the quorum, learns both changes.
    wait_until(f"broker {controller} to see the changes", lambda: (
        len(metadata_from(cluster.nodes[controller].addr, "before")["partitions"]) == 5
        and len(metadata_from(cluster.nodes[controller].addr, "after")["partitions"]) == 2), 30)


def test_whole_cluster_restart_keeps_topics_data_and_offsets(cluster):
    topic = "restart"
    create_topic(cluster, topic, PARTITIONS)
    w = Workload(cluster.bootstrap, topic, PARTITIONS)
    w.start()
    try:
        w.wait_progress("acks before the restart", 2000, 60)
        history = w.finish()
    finally:
        w.stopping.set()
    group = "restart-group"
    committed = _consume_and_commit(cluster.bootstrap, topic, group, 1000)
    # Everyone at once, as a power cut would: no controlled shutdown can move anything.
    for n in cluster.nodes.values():
        n.kill9()
    for n in cluster.nodes.values():
        n.start()
    cluster.wait_ready()
    assert len(view(cluster, topic)["partitions"]) == PARTITIONS
    check(history, read_all(cluster.bootstrap, topic, PARTITIONS))
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "broker.address.family": "v4",
                  "group.id": group, "enable.auto.commit": False})
    try:
        back = wait_until("the group's committed offsets", lambda: {
            tp.partition: tp.offset for tp in c.committed(
                [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=5)
            if tp.offset >= 0} or None, 60)
    finally:
        c.close()
    assert back == committed


def _consume_and_commit(bootstrap, topic, group, count) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                  "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        seen = 0
        deadline = time.monotonic() + 60
        while seen < count:
            assert time.monotonic() < deadline, f"consumed only {seen} of {count}"
            m = c.poll(0.5)
            if m is not None and not m.error():
                seen += 1
        committed = c.commit(asynchronous=False)
        return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
    finally:
        c.close()


def test_rejoining_broker_catches_up_and_leads_again(cluster):
    topic = "rejoin"
    create_topic(cluster, topic, PARTITIONS)
    md = view(cluster, topic)
    # The broker that is the preferred (first) replica of partition 0.
    victim = md["partitions"][0]["replicas"][0]
    preferred = [p for p, s in md["partitions"].items() if s["replicas"][0] == victim]
    w = Workload(cluster.bootstrap, topic, PARTITIONS)
    w.start()
    try:
        w.wait_progress("acks before the stop", 300, 60)
        cluster.nodes[victim].kill9()
        wait_until("leaders to move off the stopped broker", lambda: all(
            s["leader"] not in (victim, -1)
            for s in view(cluster, topic, exclude={victim})["partitions"].values()), 30)
        # It misses a good part of the log while down.
        w.wait_progress("acks while it is down", 3000, 90)
        cluster.nodes[victim].start()
        cluster.wait_ready([victim])
        wait_in_sync(cluster, topic, victim)
        # Auto leader rebalance hands its preferred partitions back.
        wait_until(f"broker {victim} to lead {preferred} again", lambda: all(
            leader_of(cluster, topic, p) == victim for p in preferred), 60)
        w.wait_progress("acks after it leads again", 300, 60)
        history = w.finish()
    finally:
        w.stopping.set()
    hws: dict[int, int] = {}
    check(history, read_all(cluster.bootstrap, topic, PARTITIONS, ends=hws))
    wait_until("replicas to converge", lambda: check_converged(
        cluster.nodes.values(), topic, PARTITIONS, hws), 30)
