"""The keys access tokens are signed with, kept in the service's database so that every replica
signs and publishes the same ones, and rotated without downtime:

1. a new key is created and takes over signing at once (the old one is marked retired);
2. the JWKS keeps publishing a retired key until every token it signed has expired, so tokens
   issued just before a rotation stay valid;
3. the gateway, meeting a token with the new key id, refreshes its JWKS cache on the spot.

Rotation happens when the signing key is older than the rotation period (checked as tokens are
issued) or on demand (`POST /api/v1/admin/keys/rotate`). An advisory lock makes replicas that
rotate together create one key, not several.

Keys are Ed25519, identified by their RFC 7638 thumbprint. The private key is stored in the
service's own database, which no other service's credentials can open; a deployment that wants
them outside the database should put them in a KMS and keep only references here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg.types.json import Jsonb

from keelson_services.auth.config import ALGORITHM
from keelson_services.db import Connection, Database

# How long a replica signs with the key it last read before looking again: another replica's
# rotation reaches it within this time, and meanwhile its tokens stay valid (old keys verify).
ACTIVE_KEY_CACHE_SECONDS = 30.0
_ROTATION_LOCK = int.from_bytes(hashlib.sha256(b"keelson.users.signing_keys").digest()[:8], "big", signed=True)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(private_key: Ed25519PrivateKey) -> dict[str, str]:
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = _b64url(raw)
    # RFC 7638: the thumbprint of the required members in lexicographic order, no whitespace.
    members = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    thumbprint = _b64url(hashlib.sha256(members.encode()).digest())
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": thumbprint, "alg": ALGORITHM, "use": "sig"}


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey
    created_at: datetime


class KeyRing:
    def __init__(
        self,
        db: Database,
        *,
        rotation_period: timedelta,
        verify_window: timedelta,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`verify_window`: how long a retired key stays published (the access token lifetime
        plus clock leeway)."""
        self.db = db
        self.rotation_period = rotation_period
        self.verify_window = verify_window
        self._clock = clock
        self._active: SigningKey | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def signing_key(self) -> SigningKey:
        """The key to sign with now; creates the first key and rotates an aged one."""
        now = self._clock()
        if self._active is not None and now - self._read_at < ACTIVE_KEY_CACHE_SECONDS:
            return self._active
        async with self._lock:
            if self._active is None or self._clock() - self._read_at >= ACTIVE_KEY_CACHE_SECONDS:
                self._active = await self._current_or_new(force=False)
                self._read_at = self._clock()
            return self._active

    async def rotate(self) -> SigningKey:
        """A new key signs from now on; the previous one keeps verifying (see the module doc)."""
        async with self._lock:
            self._active = await self._current_or_new(force=True)
            self._read_at = self._clock()
            return self._active

    async def jwks(self) -> dict[str, Any]:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT public_jwk FROM signing_keys
                WHERE retired_at IS NULL OR retired_at > now() - %s
                ORDER BY created_at DESC
                """,
                [self.verify_window],
            )
            return {"keys": [row["public_jwk"] for row in await cursor.fetchall()]}

    async def _current_or_new(self, *, force: bool) -> SigningKey:
        async with self.db.connection() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", [_ROTATION_LOCK])
            cursor = await conn.execute(
                """
                SELECT kid, private_key_pem, created_at, created_at < now() - %s AS aged
                FROM signing_keys WHERE retired_at IS NULL
                """,
                [self.rotation_period],
            )
            row = await cursor.fetchone()
            if row is not None and not force and not row["aged"]:
                return _key_of(row)
            return await self._create(conn)

    async def _create(self, conn: Connection) -> SigningKey:
        private_key = Ed25519PrivateKey.generate()
        jwk = public_jwk(private_key)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        await conn.execute("UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL")
        cursor = await conn.execute(
            """
            INSERT INTO signing_keys (kid, algorithm, private_key_pem, public_jwk)
            VALUES (%s, %s, %s, %s) RETURNING kid, private_key_pem, created_at
            """,
            [jwk["kid"], ALGORITHM, pem, Jsonb(jwk)],
        )
        row = await cursor.fetchone()
        assert row is not None
        return _key_of(row)


def _key_of(row: dict[str, Any]) -> SigningKey:
    key = serialization.load_pem_private_key(row["private_key_pem"].encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"signing key {row['kid']} is not an Ed25519 key")
    return SigningKey(row["kid"], key, row["created_at"])
