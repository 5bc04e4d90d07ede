"""A broker with TLS listeners for the client suites, and the throwaway PKI it uses.

``make_pki`` runs ``compat/certs.sh`` (openssl) into a temporary directory; ``start_tls_broker``
starts a broker with three listeners: PLAINTEXT (the inter-broker one, what the fixtures wait
for), SSL (server certificate only) and MTLS (protocol SSL, ``ssl.client.auth=required`` via
the per-listener ``listener.name.mtls.`` prefix).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

CERTS_SH = Path(__file__).resolve().parent.parent / "certs.sh"


def free_port() -> int:
    # (Not imported from conftest: the kcat suite has its own conftest module.)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_pki(directory: Path) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    subprocess.run(["bash", str(CERTS_SH), str(directory)], check=True)
    return directory


@dataclass
class TlsBroker:
    broker: object
    pki: Path
    ssl: str   # bootstrap of the SSL listener (no client certificate needed)
    mtls: str  # bootstrap of the MTLS listener (client certificate required)

    def client(self, bootstrap: str, *, cert: str | None = "client",
               ca: str = "ca.pem") -> dict[str, str]:
        """confluent-kafka / librdkafka settings for a TLS client of this broker."""
        conf = {
            "bootstrap.servers": bootstrap,
            "security.protocol": "SSL",
            "ssl.ca.location": str(self.pki / ca),
            "broker.address.family": "v4",
        }
        if cert:
            conf["ssl.certificate.location"] = str(self.pki / f"{cert}.crt")
            conf["ssl.key.location"] = str(self.pki / f"{cert}.key")
        return conf


def start_tls_broker(broker_factory, pki: Path) -> TlsBroker:
    b = broker_factory(start=False)
    ssl, mtls = free_port(), free_port()
    b.settings.update({
        "listeners": f"PLAINTEXT://127.0.0.1:{b.port},SSL://127.0.0.1:{ssl},"
                     f"MTLS://127.0.0.1:{mtls}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL",
        "inter.broker.listener.name": "PLAINTEXT",
        "ssl.keystore.location": str(pki / "broker.pem"),
        "ssl.truststore.location": str(pki / "ca.pem"),
        "listener.name.mtls.ssl.client.auth": "required",
    })
    b.start()
    return TlsBroker(b, pki, f"127.0.0.1:{ssl}", f"127.0.0.1:{mtls}")
