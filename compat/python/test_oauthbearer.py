"""SASL OAUTHBEARER with confluent-kafka (librdkafka): JWTs signed with an ES256 key whose JWKS
the broker reads from a file (``sasl.oauthbearer.jwks.endpoint.url=file://...``), handed to the
client by ``oauth_cb``. A valid token produces and consumes; a token signed by another key, for
another audience or already expired is an authentication error and nothing is produced.

The JWTs are signed here with ``cryptography`` alone (no PyJWT): base64url header and payload,
an ECDSA P-256 SHA-256 signature converted from DER to the raw r||s that JWS wants.
"""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest

cryptography = pytest.importorskip("cryptography")
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from compat_util import wait_until  # noqa: E402
from sasl_util import round_trip  # noqa: E402
from tls_util import free_port  # noqa: E402

AUDIENCE = "spate"
ISSUER = "https://issuer.test"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """An ES256 signing key, its JWKS (one key, ``kid``) and tokens signed with it."""

    def __init__(self, kid: str):
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())
        pub = self.key.public_key().public_numbers()
        self.jwks = {"keys": [{
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": b64url(pub.x.to_bytes(32, "big")),
            "y": b64url(pub.y.to_bytes(32, "big")),
        }]}

    def token(self, sub: str, aud: str = AUDIENCE, ttl: int = 600,
              iss: str = ISSUER) -> tuple[str, int]:
        """(JWT, exp) for ``sub``, expiring ``ttl`` seconds from now (negative: expired)."""
        now = int(time.time())
        exp = now + ttl
        header = {"alg": "ES256", "typ": "JWT", "kid": self.kid}
        claims = {"sub": sub, "aud": aud, "iss": iss, "iat": now, "exp": exp}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")), exp


class OAuthBroker:
    def __init__(self, broker, oauth: str):
        self.broker = broker
        self.oauth = oauth  # bootstrap of the SASL_PLAINTEXT (OAUTHBEARER) listener

    def client(self, token: str, exp: int, sub: str = "alice") -> dict:
        def oauth_cb(_config):
            # (token, expiry in epoch seconds, principal); confluent-kafka converts to ms.
            return token, float(exp), sub

        return {
            "bootstrap.servers": self.oauth,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "OAUTHBEARER",
            "oauth_cb": oauth_cb,
            "broker.address.family": "v4",
        }

    def plaintext_admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.broker.bootstrap,
                            "broker.address.family": "v4"})


@pytest.fixture(scope="module")
def issuer():
    return Issuer("k1")


@pytest.fixture
def oauth_broker(broker_factory, issuer, tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(issuer.jwks))
    b = broker_factory(start=False)
    port = free_port()
    b.settings.update({
        "listeners": f"PLAINTEXT://127.0.0.1:{b.port},OAUTH://127.0.0.1:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,OAUTH:SASL_PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.name.oauth.sasl.enabled.mechanisms": "OAUTHBEARER",
        "sasl.oauthbearer.jwks.endpoint.url": f"file://{jwks}",
        "sasl.oauthbearer.expected.audience": AUDIENCE,
        "sasl.oauthbearer.expected.issuer": ISSUER,
        "auto.create.topics.enable": "false",
    })
    b.start()
    return OAuthBroker(b, f"127.0.0.1:{port}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(ob: OAuthBroker, topic: str) -> None:
    admin = ob.plaintext_admin()  # kept alive until the future resolves
    futs = admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=10)
    futs[topic].result(timeout=15)


def high_watermark(ob: OAuthBroker, topic: str) -> int:
    c = Consumer({"bootstrap.servers": ob.broker.bootstrap, "group.id": unique("hw"),
                  "broker.address.family": "v4"})
    try:
        _lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return hi
    finally:
        c.close()


def authentication_error(conf: dict, topic: str, timeout: float = 15) -> tuple[str, list]:
    """Produce one record; return the first _AUTHENTICATION error and the delivery reports."""
    errors: list[KafkaError] = []
    delivered: list = []
    p = Producer({**conf, "error_cb": errors.append, "message.timeout.ms": 5000})
    try:
        p.produce(topic, value=b"must-not-land",
                  on_delivery=lambda err, m: delivered.append((err, m)))

        def seen():
            p.poll(0.1)
            return [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
        err = wait_until(seen, timeout, "an authentication error")[0].str()
        p.flush(10)
        return err, delivered
    finally:
        p.purge()
        p.close()


def test_valid_token_produces_and_consumes(oauth_broker, issuer):
    token, exp = issuer.token("alice")
    conf = oauth_broker.client(token, exp)
    topic = unique("oauth")
    create_topic(oauth_broker, topic)
    n = 30
    got = round_trip(conf, topic, n, commit=True)
    assert got == [f"v{i}".encode() for i in range(n)]
    assert high_watermark(oauth_broker, topic) == n


@pytest.mark.parametrize("why", ["another key", "wrong audience", "wrong issuer", "expired"])
def test_invalid_token_is_an_authentication_error(oauth_broker, issuer, why):
    if why == "another key":
        token, exp = Issuer(issuer.kid).token("alice")  # same kid, different key
    elif why == "wrong audience":
        token, exp = issuer.token("alice", aud="elsewhere")
    elif why == "wrong issuer":
        token, exp = issuer.token("alice", iss="https://other.test")
    else:
        token, _ = issuer.token("alice", ttl=-300)
        exp = int(time.time()) + 600  # librdkafka refuses a token it knows to be expired
    topic = unique("oauth-bad")
    create_topic(oauth_broker, topic)
    err, delivered = authentication_error(oauth_broker.client(token, exp), topic)
    # The broker's SaslAuthenticate message after the client's \x01 is, as Kafka's, the
    # RFC 7628 status {"status":"invalid_token"}, inside librdkafka's wrapper.
    assert "SASL authentication error" in err and "invalid_token" in err, err
    assert all(e is not None for e, _m in delivered), delivered
    assert high_watermark(oauth_broker, topic) == 0
    # The broker is still fine for a good token.
    good, good_exp = issuer.token("alice")
    assert AdminClient(oauth_broker.client(good, good_exp)).list_topics(timeout=10).brokers
