"""Named listeners with real clients: a broker whose INTERNAL listener advertises a host only
a Kubernetes cluster could resolve, and whose EXTERNAL listener (another loopback address)
advertises itself. Clients that bootstrap on EXTERNAL must be told EXTERNAL addresses in
Metadata and FindCoordinator, or they fail to connect: this is how clients outside a
Kubernetes cluster reach brokers through NodePort or LoadBalancer Services.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, KafkaProducer

from conftest import free_port

EXTERNAL_HOST = "127.0.0.2"


@pytest.fixture
def two_door_broker(broker_factory):
    b = broker_factory(start=False)
    external = free_port()
    b.settings.update({
        "listeners": f"INTERNAL://127.0.0.1:{b.port},EXTERNAL://{EXTERNAL_HOST}:{external}",
        "advertised.listeners":
            f"INTERNAL://spate-0.spate-brokers.invalid:{b.port},EXTERNAL://{EXTERNAL_HOST}:{external}",
        "listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
    })
    b.start()
    return b, f"{EXTERNAL_HOST}:{external}"


def test_metadata_names_the_listener_the_client_used(two_door_broker):
    broker, external = two_door_broker
    for bootstrap, host in ((external, EXTERNAL_HOST),
                            (broker.bootstrap, "spate-0.spate-brokers.invalid")):
        md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
        assert [b.host for b in md.brokers.values()] == [host], bootstrap


def test_confluent_kafka_produces_and_consumes_a_group_through_external(two_door_broker):
    _, external = two_door_broker
    topic = f"ext-{uuid.uuid4().hex[:8]}"
    p = Producer({"bootstrap.servers": external, "enable.idempotence": True})
    for i in range(20):
        p.produce(topic, key=str(i).encode(), value=f"v{i}".encode())
    assert p.flush(15) == 0
    c = Consumer({"bootstrap.servers": external, "group.id": f"g-{topic}",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    try:
        while len(got) < 20:
            m = c.poll(15)
            assert m is not None, f"only {len(got)} of 20 consumed"
            assert m.error() is None, m.error()
            got.append(m.value())
        c.commit(asynchronous=False)
    finally:
        c.close()
    assert sorted(got) == sorted(f"v{i}".encode() for i in range(20))


def test_kafka_python_group_through_external(two_door_broker):
    _, external = two_door_broker
    topic = f"ext-kp-{uuid.uuid4().hex[:8]}"
    p = KafkaProducer(bootstrap_servers=external)
    for i in range(10):
        p.send(topic, f"v{i}".encode())
    p.flush(15)
    p.close()
    c = KafkaConsumer(topic, bootstrap_servers=external, group_id=f"g-{topic}",
                      auto_offset_reset="earliest", consumer_timeout_ms=15000)
    try:
        got = [m.value for _, m in zip(range(10), c)]
        c.commit()
    finally:
        c.close()
    assert got == [f"v{i}".encode() for i in range(10)]
