"""Credentials, the admin Secret and the rotation annotation: pure parsing and formatting."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from keelson.databases.admin import AdminSecretInvalid, parse_admin_secret
from keelson.databases.credentials import endpoint_of, new_password, scram_verifier
from keelson.databases.rotation import Rotation, parse


def _secret(**values: str) -> dict[str, object]:
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


def test_passwords_are_long_random_and_uri_safe() -> None:
    passwords = {new_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) >= 43 and p.replace("-", "").replace("_", "").isalnum() for p in passwords)


def test_scram_verifier_follows_rfc_5803() -> None:
    salt = b"0123456789abcdef"
    verifier = scram_verifier("pencil", salt=salt)
    head, keys = verifier.rsplit("$", 1)
    assert head == f"SCRAM-SHA-256$4096:{base64.b64encode(salt).decode()}"
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert keys.split(":")[1] == base64.b64encode(server_key).decode()
    assert "pencil" not in verifier and scram_verifier("pencil") != scram_verifier("pencil")  # salted


def test_admin_secret_uri_or_keys() -> None:
    by_uri = parse_admin_secret(_secret(uri="postgresql://admin:pw@db.example.com:6543/maint?sslmode=require"))
    assert (by_uri.host, by_uri.port, by_uri.sslmode) == ("db.example.com", 6543, "require")
    assert "dbname=maint" in by_uri.conninfo and "pw" not in repr(by_uri)
    by_keys = parse_admin_secret(_secret(host="10.0.0.5", user="admin", password="pw"))
    assert (by_keys.host, by_keys.port) == ("10.0.0.5", 5432) and "dbname=postgres" in by_keys.conninfo


@pytest.mark.parametrize(
    "secret",
    [_secret(), _secret(host="h", user="u"), _secret(uri="postgresql://a@h1,h2/x"), {"data": {"uri": "%%%"}}],
)
def test_unusable_admin_secrets_are_refused_without_quoting_them(secret: dict[str, object]) -> None:
    with pytest.raises(AdminSecretInvalid) as info:
        parse_admin_secret(secret)
    assert "pw" not in str(info.value)


def test_endpoint_of_a_users_secret() -> None:
    assert endpoint_of(_secret(uri="postgresql://u:p@pg.data.svc:6000/x")) == ("pg.data.svc", 6000)
    assert endpoint_of(_secret(host="10.0.0.1", port="5433", uri="whatever")) == ("10.0.0.1", 5433)
    assert endpoint_of(_secret(uri="postgresql:///x?host=/var/run")) is None
    assert endpoint_of(None) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-25T10:00:00Z", Rotation("2026-11-25T10:00:00Z", None)),
        ("orders@1", Rotation("1", frozenset({"orders"}))),
        (" orders , users @ t ", Rotation("t", frozenset({"orders", "users"}))),
        ("", None),
        ("Orders@1", None),  # not a service name: refused rather than rotating everything
        ("orders@", None),
    ],
)
def test_rotation_annotation(value: str, expected: Rotation | None) -> None:
    assert parse(value) == expected


def test_a_token_rotates_each_targeted_service_once() -> None:
    rotation = Rotation("t1", frozenset({"orders"}))
    assert rotation.due("orders", None) and rotation.due("orders", "t0")
    assert not rotation.due("orders", "t1") and not rotation.due("users", None)
