"""A service's database credentials: generating them, and their form in its Secret. Pure.

Passwords are 256 random bits, URL-safe, so they need no escaping in a URI. What is sent to the
server is the SCRAM-SHA-256 verifier, never the password: PostgreSQL stores a verifier it is given
as is, so the password cannot end up in the server's log (`log_statement = ddl`) or in
`pg_stat_activity`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode

from psycopg.conninfo import conninfo_to_dict

SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)
# The keys of every Secret Keelson writes. `username` and `password` make it a valid
# kubernetes.io/basic-auth Secret, the form CloudNativePG's managed roles read.
SECRET_KEYS = ("host", "port", "dbname", "user", "username", "password", "uri")
SECRET_TYPE = "kubernetes.io/basic-auth"
# Beside the credentials, a key for what the service encrypts before storing it (the users
# service's token-signing keys): kept apart from the database, so that a copy of the database
# (a dump, a backup) holds no usable secret. Generated once, kept across password rotations.
KEK_KEY = "key-encryption-key"


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    dbname: str
    user: str
    password: str
    sslmode: str | None = None

    def __repr__(self) -> str:  # never print the password by accident
        return f"Credentials({self.user}@{self.host}:{self.port}/{self.dbname})"

    @property
    def uri(self) -> str:
        query = f"?{urlencode({'sslmode': self.sslmode})}" if self.sslmode else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (
            f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{host}:{self.port}/{quote(self.dbname, safe='')}{query}"
        )

    def at(self, host: str, port: int, sslmode: str | None) -> Credentials:
        """The same role and password at an endpoint (the server may have moved)."""
        return replace(self, host=host, port=port, sslmode=sslmode)

    def with_password(self, password: str) -> Credentials:
        return replace(self, password=password)


def new_password() -> str:
    return secrets.token_urlsafe(32)


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` form PostgreSQL stores (RFC 5803).
    Our passwords are ASCII, which SASLprep leaves as they are."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def new_key_encryption_key() -> str:
    """256 random bits, URL-safe base64 (what the services' `KEELSON_KEY_ENCRYPTION_KEY` takes)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def key_encryption_key(secret: dict[str, Any] | None) -> str | None:
    """The key-encryption key a live Secret holds, if any."""
    raw = ((secret or {}).get("data") or {}).get(KEK_KEY)
    return base64.b64decode(raw).decode() if raw else None


def secret_data(creds: Credentials, kek: str | None = None) -> dict[str, str]:
    """The Secret's `data`: base64, because the API server turns `stringData` into `data` and a
    desired `stringData` would never match the live object (and be re-applied on every pass)."""
    plain = {
        "host": creds.host,
        "port": str(creds.port),
        "dbname": creds.dbname,
        "user": creds.user,
        "username": creds.user,
        "password": creds.password,
        "uri": creds.uri,
    }
    if kek:
        plain[KEK_KEY] = kek
    return {k: base64.b64encode(v.encode()).decode() for k, v in plain.items()}


def from_secret(secret: dict[str, Any] | None) -> Credentials | None:
    """The credentials a live Secret holds, or None when it is missing or incomplete."""
    data = (secret or {}).get("data") or {}
    try:
        plain = {k: base64.b64decode(data[k]).decode() for k in ("host", "port", "dbname", "user", "password")}
        port = int(plain["port"])
    except (KeyError, ValueError):
        return None
    if not plain["password"] or not plain["user"]:
        return None
    sslmode = None
    if "uri" in data and "sslmode=" in (uri := base64.b64decode(data["uri"]).decode()):
        sslmode = uri.split("sslmode=", 1)[1].split("&", 1)[0]
    return Credentials(plain["host"], port, plain["dbname"], plain["user"], plain["password"], sslmode)


def checksum(creds: Credentials) -> str:
    """Put on the pod template: a changed password (or endpoint) rolls the pods that use it. A
    truncated digest of a 256-bit random password reveals nothing about it."""
    return hashlib.sha256(f"{creds.uri}".encode()).hexdigest()[:16]


def endpoint_of(secret: dict[str, Any] | None) -> tuple[str, int] | None:
    """Host and port of a connection Secret (keys host/port, else key uri), when it names one."""
    data = (secret or {}).get("data") or {}
    try:
        plain = {k: base64.b64decode(v).decode() for k, v in data.items() if k in ("host", "port", "uri")}
        params = conninfo_to_dict(plain["uri"]) if "uri" in plain and not plain.get("host") else {}
        host = plain.get("host") or str(params.get("host") or "")
        port = int(plain.get("port") or params.get("port") or 5432)
    except Exception:  # malformed: no egress rather than a guess
        return None
    return (host, port) if host and "," not in host and not host.startswith("/") else None
