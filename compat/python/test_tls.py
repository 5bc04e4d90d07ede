"""TLS listeners with confluent-kafka (librdkafka over OpenSSL): produce and consume over a
server-authenticated listener and over mutual TLS; refusals for an untrusted client
certificate, a client that does not trust the broker's CA, and a plaintext client.
"""

from __future__ import annotations

import socket
import struct
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from tls_util import make_pki, start_tls_broker


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(broker_factory, pki):
    return start_tls_broker(broker_factory, pki)


def produce_and_consume(conf: dict[str, str], n: int = 20) -> list[bytes]:
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    p = Producer({**conf, "enable.idempotence": True})
    for i in range(n):
        p.produce(topic, key=str(i).encode(), value=f"v{i}".encode())
    assert p.flush(20) == 0
    c = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    try:
        while len(got) < n:
            m = c.poll(15)
            assert m is not None, f"only {len(got)} of {n} consumed"
            assert m.error() is None, m.error()
            got.append(m.value())
    finally:
        c.close()
    return got


@pytest.mark.parametrize("listener", ["ssl", "mtls"])
def test_confluent_kafka_produces_and_consumes_over_tls(tls_broker, listener):
    conf = tls_broker.client(getattr(tls_broker, listener),
                             cert="client" if listener == "mtls" else None)
    assert sorted(produce_and_consume(conf)) == sorted(f"v{i}".encode() for i in range(20))


def refused(conf: dict[str, str]) -> bool:
    try:
        AdminClient(conf).list_topics(timeout=5)
    except KafkaException:
        return True
    return False


def test_mtls_refuses_an_untrusted_client_certificate(tls_broker):
    assert refused(tls_broker.client(tls_broker.mtls, cert="rogue"))


def test_mtls_refuses_a_client_without_a_certificate(tls_broker):
    assert refused(tls_broker.client(tls_broker.mtls, cert=None))


def test_a_client_that_does_not_trust_the_brokers_ca_is_refused(tls_broker):
    assert refused(tls_broker.client(tls_broker.ssl, cert=None, ca="rogue-ca.pem"))


def test_a_plaintext_client_on_the_tls_port_gets_nothing_back(tls_broker):
    host, port = tls_broker.ssl.split(":")
    # ApiVersions v0, correlation id 7, client id "raw".
    body = struct.pack(">hhih", 18, 0, 7, 3) + b"raw"
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
    assert data == b""
    # ... and the PLAINTEXT listener still answers the same bytes.
    md = AdminClient({"bootstrap.servers": tls_broker.broker.bootstrap}).list_topics(timeout=10)
    assert md.brokers
