"""SASL listeners with real clients: confluent-kafka (librdkafka) and kafka-python over
SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and SASL_SSL (SCRAM-SHA-512); users made
with AlterUserScramCredentials and shown by DescribeUserScramCredentials; refusals (wrong
password and unknown user give one message, a client without SASL gets nothing); and
KIP-368 re-authentication (``connections.max.reauth.ms``) under a steady produce/consume load.
The broker comes from ``sasl_util.start_sasl_broker``, its certificates from compat/certs.sh.
"""

from __future__ import annotations

import collections
import logging
import re
import socket
import struct
import time
import uuid

import confluent_kafka
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as Errors

from compat_util import wait_until
from sasl_util import round_trip, start_sasl_broker
from tls_util import make_pki

SCRAM_FAILED = ("Authentication failed during authentication due to invalid credentials with "
                "SASL mechanism {}")
PLAIN_FAILED = "Authentication failed: Invalid username or password"
# What librdkafka puts around the broker's SaslAuthenticate error message.
LIBRDKAFKA_AUTH_ERROR = re.compile(
    r"^\S+: SASL authentication error: (?P<broker>.*) \(after \d+ms in state AUTH_REQ\)$")
LIBRDKAFKA = tuple(int(x) for x in confluent_kafka.libversion()[0].split(".")[:3])


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def sasl_broker(broker_factory, pki):
    return start_sasl_broker(broker_factory, pki)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ------------------------------------------------------------------------------------------
# confluent-kafka helpers
# ------------------------------------------------------------------------------------------

def produce_and_consume(conf: dict[str, str], n: int = 50) -> list[bytes]:
    """Produce n records (idempotent, acks=all) to a new topic, then read them with a group."""
    got = round_trip(conf, unique("sasl"), n)
    assert len(got) == n, f"only {len(got)} of {n} consumed"
    return got


def logs_in(conf: dict[str, str], timeout: float = 10) -> bool:
    """True when the client gets metadata; raises KafkaException when it does not."""
    admin = AdminClient(conf)
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    finally:
        del admin  # not kept alive by a traceback that holds this frame


def authentication_error(conf: dict[str, str], timeout: float = 15) -> str:
    """The first _AUTHENTICATION error librdkafka reports for this client (error_cb)."""
    errors: list[KafkaError] = []
    p = Producer({**conf, "error_cb": errors.append})
    try:
        def seen():
            p.poll(0.1)
            return [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
        return wait_until(seen, timeout, "an authentication error")[0].str()
    finally:
        p.close()


def broker_message(librdkafka_error: str) -> str:
    """The broker's SaslAuthenticate error message inside librdkafka's error text."""
    m = LIBRDKAFKA_AUTH_ERROR.match(librdkafka_error)
    assert m, f"not a SASL authentication error: {librdkafka_error!r}"
    return m["broker"]


# ------------------------------------------------------------------------------------------
# 1. produce and consume
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("listener,mechanism", [
    ("sasl_ssl", "SCRAM-SHA-512"),
    ("sasl_plaintext", "SCRAM-SHA-256"),
    ("sasl_plaintext", "PLAIN"),
])
def test_confluent_kafka_produces_and_consumes_over_sasl(sasl_broker, listener, mechanism):
    conf = sasl_broker.client(listener, mechanism)
    # Metadata over a SASL listener advertises that listener, not the PLAINTEXT one.
    md = AdminClient(conf).list_topics(timeout=10)
    assert [f"{b.host}:{b.port}" for b in md.brokers.values()] == [sasl_broker.bootstrap(listener)]
    got = produce_and_consume(conf)
    assert sorted(got) == sorted(f"v{i}".encode() for i in range(50))


# ------------------------------------------------------------------------------------------
# 2. users made with AlterUserScramCredentials
# ------------------------------------------------------------------------------------------

def upsert(mechanism: ScramMechanism, user: str = "alice", password: bytes = b"alice-secret",
           iterations: int = 8192) -> UserScramCredentialUpsertion:
    return UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, iterations), password)


# (The AdminClient lives only inside these helpers: a failing test's frame would otherwise keep
# it retrying a stopped broker, and logging so, through the rest of the run.)
def alter_scram(sasl_broker, alterations) -> dict[str, KafkaError | None]:
    """AlterUserScramCredentials as admin: each user's error, or None."""
    admin = AdminClient(sasl_broker.client("sasl_plaintext"))  # alive until the results are in
    futures = admin.alter_user_scram_credentials(alterations, request_timeout=15)
    out = {}
    for user, future in futures.items():
        try:
            out[user] = future.result(15)
        except KafkaException as e:
            out[user] = e.args[0]
    return out


def describe_scram(sasl_broker, user: str | None = None) -> dict | KafkaError:
    """DescribeUserScramCredentials: {user: {mechanism: iterations}} (all users when None),
    or the error for ``user``."""
    admin = AdminClient(sasl_broker.client("sasl_plaintext"))
    try:
        if user is None:
            found = admin.describe_user_scram_credentials(request_timeout=15).result(15)
        else:
            found = {user: admin.describe_user_scram_credentials(
                [user], request_timeout=15)[user].result(15)}
    except KafkaException as e:
        return e.args[0]
    return {u: {i.mechanism: i.iterations for i in d.scram_credential_infos}
            for u, d in found.items()}


def test_alter_and_describe_user_scram_credentials(sasl_broker):
    # One request per mechanism: Kafka refuses two changes of one user in one request.
    for mechanism in (ScramMechanism.SCRAM_SHA_512, ScramMechanism.SCRAM_SHA_256):
        assert alter_scram(sasl_broker, [upsert(mechanism)]) == {"alice": None}
    both = {ScramMechanism.SCRAM_SHA_256: 8192, ScramMechanism.SCRAM_SHA_512: 8192}
    assert describe_scram(sasl_broker, "alice") == {"alice": both}
    # All users: the admin from --add-scram (4096 iterations, Kafka's default) and alice.
    assert describe_scram(sasl_broker) == {
        "admin": {ScramMechanism.SCRAM_SHA_256: 4096, ScramMechanism.SCRAM_SHA_512: 4096},
        "alice": both}

    # alice logs in (Kafka applies credentials asynchronously: wait with a deadline) and
    # produces/consumes over both SASL listeners.
    alice512 = sasl_broker.client("sasl_ssl", "SCRAM-SHA-512", "alice", "alice-secret")
    alice256 = sasl_broker.client("sasl_plaintext", "SCRAM-SHA-256", "alice", "alice-secret")
    wait_until(lambda: logs_in(alice512, 5), 20, "alice's SCRAM-SHA-512 login")
    assert len(produce_and_consume(alice512, 20)) == 20
    assert len(produce_and_consume(alice256, 20)) == 20

    # Deleting the SCRAM-SHA-512 credential ends those logins; SCRAM-SHA-256 still works.
    deletion = UserScramCredentialDeletion("alice", ScramMechanism.SCRAM_SHA_512)
    assert alter_scram(sasl_broker, [deletion]) == {"alice": None}
    assert describe_scram(sasl_broker, "alice") == {"alice": {ScramMechanism.SCRAM_SHA_256: 8192}}
    refused512 = broker_message(authentication_error(alice512))
    assert refused512 == SCRAM_FAILED.format("SCRAM-SHA-512")
    assert logs_in(alice256)
    assert len(produce_and_consume(alice256, 10)) == 10


def test_plain_checks_the_password_against_a_scram_credential(sasl_broker):
    # Spate's own: Kafka's PLAIN checks JAAS `user_<name>` options, not SCRAM credentials,
    # so this fails against Apache Kafka (apache-kafka.sh puts only the --add-scram users there).
    assert alter_scram(sasl_broker, [upsert(ScramMechanism.SCRAM_SHA_256)]) == {"alice": None}
    plain = sasl_broker.client("sasl_plaintext", "PLAIN", "alice", "alice-secret")
    wait_until(lambda: logs_in(plain, 5), 20, "alice's PLAIN login")
    assert len(produce_and_consume(plain, 10)) == 10
    refused = authentication_error(
        sasl_broker.client("sasl_plaintext", "PLAIN", "alice", "not-it"))
    assert broker_message(refused) == PLAIN_FAILED


def test_two_changes_of_one_user_in_one_request_are_a_duplicate(sasl_broker):
    # Kafka's ScramControlManager.alterCredentials keys a request's changes by user name:
    # a second change of the same user, whatever its mechanism, is DUPLICATE_RESOURCE and
    # none of that user's changes is applied.
    result = alter_scram(sasl_broker, [upsert(ScramMechanism.SCRAM_SHA_512),
                                       upsert(ScramMechanism.SCRAM_SHA_256)])
    error = result["alice"]
    assert error is not None and error.code() == KafkaError.DUPLICATE_RESOURCE, result
    assert "cannot be altered twice in the same request" in error.str()
    missing = describe_scram(sasl_broker, "alice")
    assert isinstance(missing, KafkaError), missing
    assert missing.code() == KafkaError.RESOURCE_NOT_FOUND, missing


# ------------------------------------------------------------------------------------------
# 3. refusals
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("listener,mechanism", [
    ("sasl_plaintext", "SCRAM-SHA-256"),
    ("sasl_ssl", "SCRAM-SHA-512"),
    ("sasl_plaintext", "PLAIN"),
])
def test_wrong_password_and_unknown_user_get_the_same_answer(sasl_broker, listener, mechanism):
    wrong = authentication_error(sasl_broker.client(listener, mechanism, "admin", "not-it"))
    unknown = authentication_error(sasl_broker.client(listener, mechanism, "nobody", "not-it"))
    expected = PLAIN_FAILED if mechanism == "PLAIN" else SCRAM_FAILED.format(mechanism)
    assert broker_message(wrong) == broker_message(unknown) == expected
    for text in (wrong, unknown):
        assert "admin" not in text and "nobody" not in text
        assert not re.search(r"unknown|not found|exist", text, re.I), text
    with pytest.raises(KafkaException):
        AdminClient(sasl_broker.client(listener, mechanism, "admin", "not-it")).list_topics(
            timeout=3)


def raw_request(bootstrap: str, api_key: int, version: int, body: bytes,
                correlation_id: int = 7) -> bytes:
    """Send one request (client id "raw"), return whatever comes back before the close."""
    host, port = bootstrap.split(":")
    req = struct.pack(">hhih", api_key, version, correlation_id, 3) + b"raw" + body
    data = b""
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(req)) + req)
        try:
            while chunk := s.recv(4096):
                data += chunk
                if len(data) >= 4 and len(data) >= 4 + struct.unpack(">i", data[:4])[0]:
                    break  # one whole response: enough
        except (ConnectionResetError, socket.timeout):
            pass
    return data


def test_a_client_without_sasl_gets_no_metadata(sasl_broker):
    # librdkafka speaking PLAINTEXT to the SASL_PLAINTEXT port gets no metadata.
    with pytest.raises(KafkaException):
        AdminClient({"bootstrap.servers": sasl_broker.sasl_plaintext,
                     "broker.address.family": "v4"}).list_topics(timeout=5)
    # On the wire: ApiVersions is answered before authentication (clients need it to pick
    # SaslHandshake's version) ...
    api_versions = raw_request(sasl_broker.sasl_plaintext, 18, 0, b"")
    assert len(api_versions) > 8
    assert struct.unpack(">ii", api_versions[:8])[1] == 7  # its correlation id
    # ... a Metadata request (v1, all topics) closes the connection with nothing sent back.
    assert raw_request(sasl_broker.sasl_plaintext, 3, 1, struct.pack(">i", -1)) == b""
    # The broker keeps serving authenticated clients and its PLAINTEXT listener.
    assert logs_in(sasl_broker.client("sasl_plaintext", "SCRAM-SHA-512"))
    assert logs_in({"bootstrap.servers": sasl_broker.broker.bootstrap})
    assert len(produce_and_consume(sasl_broker.client("sasl_ssl"), 10)) == 10


# ------------------------------------------------------------------------------------------
# 4. kafka-python
# ------------------------------------------------------------------------------------------

def kafka_python_roundtrip(kw: dict, n: int = 50) -> list[bytes]:
    topic = unique("kp-sasl")
    p = KafkaProducer(acks="all", linger_ms=5, max_block_ms=15000, **kw)
    try:
        futs = [p.send(topic, key=str(i).encode(), value=f"v{i}".encode()) for i in range(n)]
        p.flush(timeout=30)
        metas = [f.get(timeout=15) for f in futs]
    finally:
        p.close(timeout=10)
    assert {m.topic for m in metas} == {topic}
    return kafka_python_read(kw, topic, {m.partition for m in metas}, n)


def kafka_python_read(kw: dict, topic: str, partitions: set[int], n: int,
                      timeout: float = 30) -> list[bytes]:
    c = KafkaConsumer(group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100, **kw)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                got.extend(r.value for r in recs)
    finally:
        c.close()
    assert len(got) == n, f"only {len(got)} of {n} consumed"
    return got


@pytest.mark.parametrize("listener,mechanism", [
    ("sasl_plaintext", "SCRAM-SHA-512"),
    ("sasl_ssl", "SCRAM-SHA-512"),
    ("sasl_plaintext", "PLAIN"),
])
def test_kafka_python_produces_and_consumes_over_sasl(sasl_broker, listener, mechanism):
    got = kafka_python_roundtrip(sasl_broker.kafka_python(listener, mechanism))
    assert sorted(got) == sorted(f"v{i}".encode() for i in range(50))


@pytest.mark.parametrize("listener", ["sasl_plaintext", "sasl_ssl"])
def test_kafka_python_wrong_password_is_an_authentication_error(sasl_broker, listener, caplog):
    # kafka-python 2.3 raises SaslAuthenticationFailedError only to transactional producers:
    # others log it (kafka.conn, ERROR), close the connection, retry, and time out.
    caplog.set_level(logging.ERROR, logger="kafka.conn")
    kw = sasl_broker.kafka_python(listener, "SCRAM-SHA-512", password="not-it")
    p = KafkaProducer(max_block_ms=3000, **kw)
    try:
        with pytest.raises(Errors.KafkaTimeoutError):
            p.send(unique("kp-refused"), b"x").get(timeout=10)
    finally:
        p.close(timeout=5)
    refusals = [r.getMessage() for r in caplog.records
                if "SaslAuthenticationFailedError" in r.getMessage()]
    assert refusals, [r.getMessage() for r in caplog.records]
    assert all(SCRAM_FAILED.format("SCRAM-SHA-512") in m for m in refusals), refusals
    assert Errors.for_code(58) is Errors.SaslAuthenticationFailedError


# ------------------------------------------------------------------------------------------
# 5. re-authentication (KIP-368)
# ------------------------------------------------------------------------------------------

REAUTH_MS = 2000
LOAD_SECONDS = 7.0


@pytest.fixture
def reauth_broker(broker_factory, pki):
    settings = {f"listener.name.{listener}.connections.max.reauth.ms": str(REAUTH_MS)
                for listener in ("sasl_plaintext", "sasl_ssl")}
    # The consumer's first JoinGroup waits out this delay (Kafka's default; apache-kafka.sh sets
    # 0), so it is still in flight when the coordinator connection re-authenticates: the
    # SaslHandshake queues behind it and reaches the broker after the session expired. Kafka
    # begins re-authentication on any SaslHandshake (SocketServer checks it before expiry).
    settings["group.initial.rebalance.delay.ms"] = str(REAUTH_MS + 1000)
    return start_sasl_broker(broker_factory, pki, settings)


@pytest.mark.parametrize("listener,mechanism", [
    ("sasl_ssl", "SCRAM-SHA-512"),
    ("sasl_plaintext", "PLAIN"),
])
def test_confluent_kafka_keeps_working_across_session_expiry(reauth_broker, listener, mechanism):
    version = confluent_kafka.libversion()[0]
    print(f"librdkafka {version}: "
          f"{'re-authenticates (KIP-368)' if LIBRDKAFKA >= (2, 2, 0) else 'reconnects'}")
    conf = reauth_broker.client(listener, mechanism)
    topic = unique("reauth")
    errors: list[KafkaError] = []
    failed: list[KafkaError] = []
    acked: list[bytes] = []
    p = Producer({**conf, "enable.idempotence": True, "linger.ms": 5,
                  "error_cb": errors.append})
    c = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest",
                  "topic.metadata.refresh.interval.ms": 1000, "error_cb": errors.append})
    c.subscribe([topic])

    def delivered(err, msg):
        (failed if err else acked).append(err or msg.value())

    sent, consumed = 0, []
    try:
        end = time.monotonic() + LOAD_SECONDS
        while time.monotonic() < end:
            p.produce(topic, value=f"r{sent}".encode(), on_delivery=delivered)
            sent += 1
            p.poll(0.02)
            m = c.poll(0.02)
            if m is not None and m.error() is None:
                consumed.append(m.value())
            elif m is not None and m.error().code() != KafkaError._PARTITION_EOF:
                errors.append(m.error())
        assert p.flush(30) == 0
        deadline = time.monotonic() + 30
        while len(consumed) < sent and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                consumed.append(m.value())
    finally:
        c.close()
        p.purge()
        p.close()
    expected = [f"r{i}".encode() for i in range(sent)]
    assert failed == []
    assert acked == expected  # idempotent producer: every record once, in order
    assert consumed == expected
    # librdkafka >= 2.2 re-authenticates on the open connections, so nothing is lost and no
    # error is reported; older ones see the broker close the expired connection and reconnect.
    transient = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN}
    if LIBRDKAFKA >= (2, 2, 0):
        assert errors == []
    else:
        assert [e for e in errors if e.code() not in transient] == []
    assert sent > 3 * LOAD_SECONDS  # a steady load across several session lifetimes


def test_kafka_python_keeps_working_across_session_expiry(reauth_broker):
    # kafka-python does not re-authenticate: the broker closes an expired connection at its
    # next request, unanswered, and the client reconnects and sends it again.
    kw = reauth_broker.kafka_python("sasl_plaintext", "SCRAM-SHA-256")
    topic = unique("kp-reauth")
    p = KafkaProducer(acks="all", max_block_ms=15000, **kw)
    metas = []
    try:
        # One record at a time, each waited for: every request of the period is answered.
        end = time.monotonic() + LOAD_SECONDS
        while time.monotonic() < end:
            metas.append(p.send(topic, value=f"r{len(metas)}".encode()).get(timeout=30))
    finally:
        p.close(timeout=10)
    expected = [f"r{j}".encode() for j in range(len(metas))]
    partitions = {m.partition for m in metas}
    got = kafka_python_read(kw, topic, partitions, len(expected))
    counts = collections.Counter(got)
    assert sorted(counts) == sorted(expected)
    assert max(counts.values()) == 1, [v for v, k in counts.items() if k > 1]
