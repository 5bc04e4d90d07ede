"""kcat (librdkafka) against SASL listeners: produce and consume over SASL_SSL with
SCRAM-SHA-512 and over SASL_PLAINTEXT with PLAIN; a wrong password is refused with the
broker's "Authentication failed" message. The broker is compat/python/sasl_util.py's.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from compat_util import unique_topic
from sasl_util import ADMIN, ADMIN_PASSWORD, start_sasl_broker
from tls_util import make_pki

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat not installed "
                                "(apt-get install -y kcat)")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def sasl_broker(broker_factory, pki):
    return start_sasl_broker(broker_factory, pki)


def kcat_sasl(sasl, listener: str, mechanism: str, *args: str, password: str = ADMIN_PASSWORD,
              stdin: bytes | None = None) -> subprocess.CompletedProcess:
    conf = sasl.client(listener, mechanism, ADMIN, password)
    argv = [KCAT, "-b", conf.pop("bootstrap.servers"), "-m", "10"]
    for k, v in conf.items():
        argv += ["-X", f"{k}={v}"]
    argv += list(args)
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=60)


@pytest.mark.parametrize("listener,mechanism", [
    ("sasl_ssl", "SCRAM-SHA-512"),
    ("sasl_plaintext", "PLAIN"),
])
def test_kcat_produces_and_consumes_over_sasl(sasl_broker, listener, mechanism):
    topic = unique_topic("kcat-sasl")
    lines = [f"k{i}:v{i}" for i in range(10)]
    p = kcat_sasl(sasl_broker, listener, mechanism, "-P", "-t", topic, "-K", ":",
                  stdin="\n".join(lines).encode() + b"\n")
    assert p.returncode == 0, p.stderr
    c = kcat_sasl(sasl_broker, listener, mechanism, "-C", "-t", topic, "-e", "-o", "beginning",
                  "-f", r"%k:%s\n")
    assert c.returncode == 0, c.stderr
    assert sorted(c.stdout.decode().split()) == sorted(lines)


@pytest.mark.parametrize("listener,mechanism", [
    ("sasl_ssl", "SCRAM-SHA-512"),
    ("sasl_plaintext", "PLAIN"),
])
def test_kcat_with_a_wrong_password_is_refused(sasl_broker, listener, mechanism):
    r = kcat_sasl(sasl_broker, listener, mechanism, "-L", password="not-it")
    assert r.returncode != 0
    assert b"Authentication failed" in r.stderr, r.stderr
