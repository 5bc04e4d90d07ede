"""kcat (librdkafka over OpenSSL) against TLS listeners: `-X security.protocol=ssl` with the
test CA, produce and consume over mutual TLS; an untrusted client certificate is refused.
Certificates come from compat/certs.sh at test time.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from compat_util import unique_topic
from tls_util import make_pki, start_tls_broker

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat not installed "
                                "(apt-get install -y kcat)")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(broker_factory, pki):
    return start_tls_broker(broker_factory, pki)


def kcat_tls(tls, bootstrap: str, *args: str, cert: str | None = "client",
             stdin: bytes | None = None) -> subprocess.CompletedProcess:
    argv = [KCAT, "-b", bootstrap, "-m", "10"]
    for k, v in tls.client(bootstrap, cert=cert).items():
        if k != "bootstrap.servers":
            argv += ["-X", f"{k}={v}"]
    argv += list(args)
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=60)


def test_kcat_produces_and_consumes_over_mtls(tls_broker):
    topic = unique_topic("kcat-tls")
    lines = [f"k{i}:v{i}" for i in range(10)]
    p = kcat_tls(tls_broker, tls_broker.mtls, "-P", "-t", topic, "-K", ":",
                 stdin="\n".join(lines).encode() + b"\n")
    assert p.returncode == 0, p.stderr
    c = kcat_tls(tls_broker, tls_broker.mtls, "-C", "-t", topic, "-e", "-o", "beginning",
                 "-f", r"%k:%s\n")
    assert c.returncode == 0, c.stderr
    assert sorted(c.stdout.decode().split()) == sorted(lines)


def test_kcat_lists_metadata_over_tls_without_a_client_certificate(tls_broker):
    r = kcat_tls(tls_broker, tls_broker.ssl, "-L", cert=None)
    assert r.returncode == 0, r.stderr
    assert tls_broker.ssl.split(":")[1] in r.stdout.decode()


def test_kcat_with_an_untrusted_certificate_is_refused(tls_broker):
    r = kcat_tls(tls_broker, tls_broker.mtls, "-L", cert="rogue")
    assert r.returncode != 0
    assert b"SSL" in r.stderr or b"ssl" in r.stderr, r.stderr
