"""The throwaway PKI, checked with openssl itself."""

import subprocess
from pathlib import Path

from keelson.devstack import certs


def _text(cert: Path) -> str:
    return subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-text"], capture_output=True, text=True, check=True
    ).stdout


def _subject(cert: Path) -> str:
    return subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-subject", "-nameopt", "RFC2253"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _verify(pki: certs.Pki, cert: Path) -> None:
    subprocess.run(["openssl", "verify", "-CAfile", str(pki.ca.cert), str(cert)], capture_output=True, check=True)


def test_ensure_pki(tmp_path: Path) -> None:
    pki = certs.ensure_pki(tmp_path / "pki")
    _verify(pki, pki.apiserver.cert)
    _verify(pki, pki.client("admin").cert)
    serving = _text(pki.apiserver.cert)
    for san in ("DNS:localhost", "IP Address:127.0.0.1", "IP Address:10.0.0.1"):
        assert san in serving
    assert _subject(pki.client("admin").cert) == "subject=CN=keelson-admin,O=system:masters"
    assert "TLS Web Client Authentication" in _text(pki.client("admin").cert)
    assert "BEGIN PRIVATE KEY" in pki.service_account_key.read_text()
    rsa = subprocess.run(
        ["openssl", "pkey", "-in", str(pki.service_account_key), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "2048 bit" in rsa


def test_ensure_pki_is_idempotent(tmp_path: Path) -> None:
    pki = certs.ensure_pki(tmp_path / "pki")
    before = pki.ca.cert.read_bytes(), pki.apiserver.cert.read_bytes()
    certs.ensure_pki(tmp_path / "pki")
    assert (pki.ca.cert.read_bytes(), pki.apiserver.cert.read_bytes()) == before


def test_plain_user_client_cert_has_no_group(tmp_path: Path) -> None:
    pki = certs.ensure_pki(tmp_path / "pki")
    pair = certs.ensure_client_cert(pki, "alice", "alice")
    assert _subject(pair.cert) == "subject=CN=alice"
