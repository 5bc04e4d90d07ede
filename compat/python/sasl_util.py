"""A broker with SASL listeners for the client suites (confluent-kafka, kafka-python, kcat).

``start_sasl_broker`` starts a broker with three listeners: PLAINTEXT (the inter-broker one,
what the fixtures wait for), SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512) and
SASL_SSL (SCRAM-SHA-512 only; the server certificate of ``tls_util.make_pki``). Its one user,
``admin`` (SCRAM-SHA-256 and SCRAM-SHA-512), comes from the command line (``--add-scram``, as
``kafka-storage format --add-scram``); tests make more with AlterUserScramCredentials.
``SaslBroker.client`` gives a client's settings in librdkafka's names (confluent-kafka and
``kcat -X``), ``kafka_python`` in kafka-python's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tls_util import free_port

ADMIN = "admin"
ADMIN_PASSWORD = "admin-secret"
PLAINTEXT_MECHANISMS = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
SSL_MECHANISMS = "SCRAM-SHA-512"
LISTENERS = ("sasl_plaintext", "sasl_ssl")


@dataclass
class SaslBroker:
    broker: object
    pki: Path
    sasl_plaintext: str  # bootstrap of the SASL_PLAINTEXT listener
    sasl_ssl: str        # bootstrap of the SASL_SSL listener

    def bootstrap(self, listener: str) -> str:
        assert listener in LISTENERS, listener
        return getattr(self, listener)

    def client(self, listener: str, mechanism: str = "SCRAM-SHA-512", user: str = ADMIN,
               password: str = ADMIN_PASSWORD) -> dict[str, str]:
        """librdkafka settings for a client of ``listener`` (``sasl_plaintext``, ``sasl_ssl``)."""
        conf = {
            "bootstrap.servers": self.bootstrap(listener),
            "security.protocol": listener.upper(),
            "sasl.mechanisms": mechanism,
            "sasl.username": user,
            "sasl.password": password,
            "broker.address.family": "v4",
        }
        if listener == "sasl_ssl":
            conf["ssl.ca.location"] = str(self.pki / "ca.pem")
        return conf

    def kafka_python(self, listener: str, mechanism: str = "SCRAM-SHA-512", user: str = ADMIN,
                     password: str = ADMIN_PASSWORD) -> dict:
        """kafka-python keyword arguments for the same client."""
        kw = dict(bootstrap_servers=self.bootstrap(listener), security_protocol=listener.upper(),
                  sasl_mechanism=mechanism, sasl_plain_username=user,
                  sasl_plain_password=password, request_timeout_ms=15000,
                  reconnect_backoff_ms=50, reconnect_backoff_max_ms=500)
        if listener == "sasl_ssl":
            kw.update(ssl_cafile=str(self.pki / "ca.pem"), ssl_check_hostname=True)
        return kw


def start_sasl_broker(broker_factory, pki: Path,
                      settings: dict[str, str] | None = None) -> SaslBroker:
    """Start the broker; ``settings`` are added to (and may override) the SASL ones."""
    b = broker_factory(start=False)
    sasl_plaintext, sasl_ssl = free_port(), free_port()
    b.settings.update({
        "listeners": f"PLAINTEXT://127.0.0.1:{b.port},"
                     f"SASL_PLAINTEXT://127.0.0.1:{sasl_plaintext},"
                     f"SASL_SSL://127.0.0.1:{sasl_ssl}",
        "listener.security.protocol.map":
            "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": PLAINTEXT_MECHANISMS,
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": SSL_MECHANISMS,
        # PEM is Spate's only store type and must be named for Kafka (its default is JKS).
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(pki / "broker.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki / "ca.pem"),
    })
    b.settings.update(settings or {})
    b.extra_args = [arg for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512") for arg in
                    ("--add-scram", f"{mechanism}=[name={ADMIN},password={ADMIN_PASSWORD}]")]
    b.start()
    return SaslBroker(b, pki, f"127.0.0.1:{sasl_plaintext}", f"127.0.0.1:{sasl_ssl}")


def round_trip(conf: dict[str, str], topic: str, n: int, commit: bool = False) -> list[bytes]:
    """Produce n records (idempotent, acks=all) to topic with confluent-kafka, then read them
    back with a consumer group; every delivery must succeed. Returns the values read."""
    from confluent_kafka import Consumer, Producer  # the kcat suite imports this module too

    p = Producer({**conf, "enable.idempotence": True})
    failed = []
    try:
        for i in range(n):
            p.produce(topic, key=str(i).encode(), value=f"v{i}".encode(),
                      on_delivery=lambda err, _m: err and failed.append(err))
        assert p.flush(30) == 0
    finally:
        p.purge()
        p.close()
    assert failed == []
    c = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    try:
        deadline = time.monotonic() + 30
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(1)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got.append(m.value())
        if commit:
            c.commit(asynchronous=False)
    finally:
        c.close()
    return got
