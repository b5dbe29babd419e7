"""`ledger serve api` over HTTPS (LEDGER_API_TLS_CERT / LEDGER_API_TLS_KEY), checked with a
certificate authority made for the test: a client that trusts it is served, one that does
not refuses the server, plain HTTP gets no answer, and a key that is not the certificate's
stops the process at start with one line."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services import __version__
from services.common.settings import Settings
from tests.integration.api_harness import TOKENS
from tests.processes import ServiceProcess, free_port, refused_start

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    other_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA and a server certificate for 127.0.0.1 and localhost that it signed."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("ledger test CA"))
        .issuer_name(_name("ledger test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    return Pki(
        ca=folder / "ca.pem",
        cert=folder / "server.pem",
        key=_write_key(server_key, folder / "server.key"),
        other_key=_write_key(ec.generate_private_key(ec.SECP256R1()), folder / "other.key"),
    )


def test_api_serves_https_with_the_configured_certificate(
    settings: Settings, pki: Pki, tmp_path: Path
) -> None:
    port = free_port()
    api = ServiceProcess(
        "api",
        settings,
        tmp_path,
        "--port",
        str(port),
        LEDGER_API_TOKENS=TOKENS,
        LEDGER_API_TLS_CERT=str(pki.cert),
        LEDGER_API_TLS_KEY=str(pki.key),
    ).start()
    try:
        trusting = ssl.create_default_context(cafile=str(pki.ca))
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=trusting) as client:
            assert client.get("/healthz").json() == {"status": "ok", "version": __version__}
            # Routes and authentication work over TLS as over HTTP.
            refused = client.get("/v1/accounts/acct-1/balance", headers={"Authorization": "x"})
            assert refused.status_code == 401
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"https://127.0.0.1:{port}/healthz", verify=ssl.create_default_context())
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        assert api.stop() == 0


def test_a_key_that_is_not_the_certificates_stops_the_api_at_start(
    settings: Settings, pki: Pki
) -> None:
    done = refused_start(
        settings,
        "api",
        LEDGER_API_TOKENS=TOKENS,
        LEDGER_API_TLS_CERT=str(pki.cert),
        LEDGER_API_TLS_KEY=str(pki.other_key),
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot serve HTTPS" in lines[0], done.stderr


def test_a_certificate_without_its_key_is_refused(settings: Settings, pki: Pki) -> None:
    done = refused_start(
        settings, "api", LEDGER_API_TOKENS=TOKENS, LEDGER_API_TLS_CERT=str(pki.cert)
    )
    assert done.returncode == 2
    assert "LEDGER_API_TLS_CERT and LEDGER_API_TLS_KEY go together" in done.stderr
