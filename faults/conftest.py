"""Fixtures for the fault scenarios: a 3-broker cluster in network namespaces, a topic.

Knobs (environment):
  SPATE_BROKER_BIN        the broker binary (default <repo>/target/debug/spate-broker)
  SPATE_FAULT_KILLS       leader kills in test_leader_kills (default 20)
  SPATE_FAULT_KEEP        keep the data dirs and logs (printed) after the run
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from netcluster import Cluster, available, metadata_from, wait_until

logging.getLogger("librdkafka").setLevel(os.environ.get("SPATE_FAULT_RDKAFKA_LOG", "WARNING"))


@pytest.fixture
def cluster(request):
    reason = available()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="spate-faults-"))
    # Broker settings of a scenario's own: parametrize "cluster" with indirect=True.
    c = Cluster(root, count=3, settings=getattr(request, "param", None))
    try:
        c.start()
        yield c
    finally:
        failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
        if failed:
            print(c.logs())
        c.stop()
        if os.environ.get("SPATE_FAULT_KEEP") or failed:
            print(f"cluster data and logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def create_topic(c: Cluster, name: str, partitions: int = 3, rf: int = 3, min_isr: int = 2):
    admin = AdminClient({"bootstrap.servers": c.bootstrap, "broker.address.family": "v4"})
    fs = admin.create_topics([NewTopic(name, partitions, rf,
                                       config={"min.insync.replicas": str(min_isr)})])
    fs[name].result(timeout=30)
    wait_until(f"{name} fully in sync on every broker", lambda: all(
        all(len(p["isr"]) == rf and p["leader"] >= 0
            for p in metadata_from(n.addr, name)["partitions"].values())
        and len(metadata_from(n.addr, name)["partitions"]) == partitions
        for n in c.nodes.values()), 60)
