"""Helpers the scenarios share: who leads, who is in sync, as the live brokers see it."""

from __future__ import annotations

from netcluster import Cluster, metadata_from, wait_until


def view(c: Cluster, topic: str, exclude=()) -> dict:
    """Metadata from the first live, unpaused broker not in ``exclude``."""
    last = None
    for n in c.nodes.values():
        if n.alive() and not n.paused and n.id not in exclude:
            try:
                return metadata_from(n.addr, topic)
            except OSError as e:
                last = e
    raise RuntimeError(f"no broker answered Metadata ({last})")


def leader_of(c: Cluster, topic: str, partition: int, exclude=()) -> int:
    return view(c, topic, exclude)["partitions"][partition]["leader"]


def wait_in_sync(c: Cluster, topic: str, broker: int, timeout: float = 60):
    """Waits until ``broker`` is in the ISR of every partition, as every live broker sees it."""
    def in_sync():
        for n in c.nodes.values():
            if n.alive() and not n.paused:
                parts = metadata_from(n.addr, topic)["partitions"].values()
                if not all(broker in p["isr"] for p in parts):
                    return False
        return True
    wait_until(f"broker {broker} back in every ISR of {topic}", in_sync, timeout)


TXN_STATE_PARTITIONS = 50  # transaction.state.log.num.partitions


def java_hash(s: str) -> int:
    """Java's String.hashCode, which places a transactional id on a __transaction_state
    partition (as Kafka does)."""
    h = 0
    for ch in s:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def coordinator_of(c: Cluster, txn_id: str, exclude=()) -> int:
    """The broker that leads the transactional id's __transaction_state partition."""
    partition = abs(java_hash(txn_id)) % TXN_STATE_PARTITIONS
    return view(c, "__transaction_state", exclude)["partitions"][partition]["leader"]
