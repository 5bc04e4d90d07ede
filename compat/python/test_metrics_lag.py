"""Consumer lag on /metrics, checked with a real client (confluent-kafka).

A group consumes everything in a two-partition topic, commits and closes; more records are
produced; the broker's Prometheus endpoint, parsed with prometheus_client's text-format
parser, then reports for that group a lag per partition equal to what was produced after the
commit, and records-in / bytes-in counters that moved with the produce. A consumer of the same
group resumes, commits, and the lag drops to 0.

Lag is computed at scrape time (log end offset minus committed offset), so every wait below
is a deadline poll on a fresh scrape.
"""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from compat_util import unique_topic, wait_until
from group_util import GROUP_BROKER_SETTINGS, ck_base, create_topic, produce_numbered

FIRST = {0: 10, 1: 6}  # records per partition consumed and committed
MORE = {0: 7, 1: 3}  # records per partition produced after the consumer stopped
LAG = "spate_consumer_group_lag"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(http: str) -> dict[tuple[str, frozenset], float]:
    """Every sample on /metrics, by (sample name, labels)."""
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def lag(samples, group: str, topic: str) -> dict[int, float]:
    return {int(dict(labels)["partition"]): v for (name, labels), v in samples.items()
            if name == LAG and dict(labels).get("group") == group
            and dict(labels).get("topic") == topic}


def counter(samples, name: str, topic: str) -> float:
    return samples.get((name, frozenset({("topic", topic)})), 0.0)


def produce_per_partition(bootstrap: str, topic: str, counts: dict[int, int], start: int) -> None:
    for p, n in counts.items():
        acked = produce_numbered(bootstrap, topic, start + 1000 * p, n, partition=p)
        assert len(acked) == n


def consume_and_commit(bootstrap: str, topic: str, group: str,
                       expected: int) -> list[tuple[int, int]]:
    """A group member reads `expected` records, commits synchronously and leaves; returns
    the (partition, offset) of each record read."""
    from confluent_kafka import Consumer
    c = Consumer({**ck_base(bootstrap), "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 6000})
    try:
        c.subscribe([topic])
        got = []

        def enough():
            msg = c.poll(0.2)
            if msg is not None:
                assert msg.error() is None, msg.error()
                got.append(msg)
            return len(got) >= expected
        wait_until(enough, 45, f"{expected} records (have {len(got)})", interval=0)
        c.commit(asynchronous=False)
        return [(m.partition(), m.offset()) for m in got]
    finally:
        c.close()


def test_group_lag_reports_records_produced_after_the_consumer_stopped(broker_factory):
    http = f"127.0.0.1:{free_port()}"
    b = broker_factory({**GROUP_BROKER_SETTINGS, "http.listeners": http})
    topic, group = unique_topic("lag"), unique_topic("grp")
    create_topic(b.bootstrap, topic, 2)

    produce_per_partition(b.bootstrap, topic, FIRST, 0)
    consume_and_commit(b.bootstrap, topic, group, sum(FIRST.values()))
    wait_until(lambda: lag(scrape(http), group, topic) == {0: 0, 1: 0}, 20,
               "zero lag after the commit")
    before = scrape(http)
    assert counter(before, "spate_records_in_total", topic) == sum(FIRST.values())

    # The consumer is gone; the producer is not.
    produce_per_partition(b.bootstrap, topic, MORE, 100)
    stopped = wait_until(lambda: (lambda s: s if lag(s, group, topic) == MORE else None)(
        scrape(http)), 20, f"lag {MORE} for {group}")
    assert counter(stopped, "spate_records_in_total", topic) - \
        counter(before, "spate_records_in_total", topic) == sum(MORE.values())
    assert counter(stopped, "spate_bytes_in_total", topic) > \
        counter(before, "spate_bytes_in_total", topic)

    # A member of the group resumes from the commit, reads the rest and commits: no lag.
    read = consume_and_commit(b.bootstrap, topic, group, sum(MORE.values()))
    assert sorted(read) == [(p, FIRST[p] + i) for p in MORE for i in range(MORE[p])]
    wait_until(lambda: lag(scrape(http), group, topic) == {0: 0, 1: 0}, 20,
               "zero lag after the consumer caught up")
