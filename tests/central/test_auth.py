"""TLS (a throwaway CA made here), client certificates, and user name and password."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sim.mosquitto import Broker, BrokerTls, make_password_file, mosquitto_available
from tests.central.helpers import (
    eventually,
    link_of,
    make_lane,
    new_central,
    release,
    running,
)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(
    path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
) -> tuple[Path, Path]:
    key_path = path.with_suffix(".key")
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cert_path = path.with_suffix(".crt")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


class Ca:
    """A certificate authority that exists for one test."""

    def __init__(self, folder: Path, name: str = "test CA") -> None:
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path, _ = _write(folder / name.replace(" ", "-"), self.key, self.cert)

    def issue(self, cn: str, *, server: bool) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return _write(self.folder / cn, key, cert)


@pytest.fixture
def tls_broker(tmp_path: Path) -> Any:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed")
    ca = Ca(tmp_path)
    cert, key = ca.issue("broker", server=True)
    broker = Broker(
        tmp_path / "broker",
        tls=BrokerTls(ca.path, cert, key, require_certificate=True),
    )
    broker.start()
    try:
        yield broker, ca
    finally:
        broker.kill()


async def test_over_tls_with_a_client_certificate_passes_are_delivered(
    tmp_path: Path, tls_broker: tuple[Broker, Ca]
) -> None:
    broker, ca = tls_broker
    cert, key = ca.issue("lane-01", server=False)
    tls = {"ca_file": str(ca.path), "cert_file": str(cert), "key_file": str(key)}
    lane = make_lane(tmp_path, broker.port, new_central(broker.port), tls=tls)
    async with running(lane):
        link = link_of(lane)
        await eventually(link.connected.is_set, what="TLS session up")
        await lane.commit_pass(release("P1", "N00001"))
        await eventually(lambda: link.stats.published >= 1, what="pass acknowledged over TLS")


@pytest.mark.parametrize("case", ["no-client-cert", "foreign-ca", "plain-tcp"])
async def test_a_lane_without_the_right_credentials_does_not_connect(
    tmp_path: Path, tls_broker: tuple[Broker, Ca], case: str
) -> None:
    broker, ca = tls_broker
    tls: dict[str, str] | None = {"ca_file": str(ca.path)}
    if case == "foreign-ca":  # a certificate the broker's CA never signed
        cert, key = Ca(tmp_path, "other CA").issue("lane-01", server=False)
        tls = {"ca_file": str(ca.path), "cert_file": str(cert), "key_file": str(key)}
    elif case == "plain-tcp":
        tls = None
    central = new_central(broker.port)
    lane = make_lane(tmp_path, broker.port, central, tls=tls, connect_timeout_s=0.5)
    async with running(lane):
        link = link_of(lane)
        await eventually(lambda: link.health.state == "down", what="refused")
        await asyncio.sleep(0.5)  # and it keeps trying, in vain
        assert link.stats.connects == 0


async def test_user_name_and_password(tmp_path: Path) -> None:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed")
    passwords = make_password_file(tmp_path / "passwd", {"lane-01": "s3cret", "central": "c"})
    broker = Broker(tmp_path / "broker", password_file=passwords)
    broker.start()
    try:
        (tmp_path / "pw").write_text("s3cret\n", encoding="utf-8")
        central = new_central(broker.port)
        wrong = make_lane(tmp_path, broker.port, central, username="lane-01", password="nope")
        async with running(wrong):
            await eventually(lambda: link_of(wrong).health.state == "down")
            detail = link_of(wrong).health.detail.lower()
            assert "authori" in detail or "password" in detail, detail
            assert link_of(wrong).stats.connects == 0
        right = make_lane(
            tmp_path, broker.port, central, username="lane-01", password_file=str(tmp_path / "pw")
        )
        async with running(right):
            await eventually(link_of(right).connected.is_set, what="logged in")
    finally:
        broker.kill()
