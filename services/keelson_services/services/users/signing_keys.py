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
service's own database, which no other service's credentials can open, and sealed there with the
key-encryption key from the service's Secret (`auth/sealing.py`): a dump or backup of the database
alone holds no usable signing key. Start-up seals any key stored before in plaintext (and re-seals
under a new KEK); a signing key that no configured KEK opens is retired and replaced, which costs
the users one log-in, never a token signed with a key nobody can read.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg.types.json import Jsonb

from keelson_services.auth.config import ALGORITHM
from keelson_services.auth.sealing import Sealer, SealError
from keelson_services.db import Connection, Database

# How long a replica signs with the key it last read before looking again: another replica's
# rotation reaches it within this time, and meanwhile its tokens stay valid (old keys verify).
ACTIVE_KEY_CACHE_SECONDS = 30.0
log = logging.getLogger("keelson.users.keys")
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
        sealer: Sealer,
        rotation_period: timedelta,
        verify_window: timedelta,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`verify_window`: how long a retired key stays published (the access token lifetime
        plus clock leeway)."""
        self.db = db
        self.sealer = sealer
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

    async def seal_stored(self) -> int:
        """Seal every private key still in plaintext or under a previous KEK with the current
        one; returns how many were. Run at start-up, before the first signature."""
        done = 0
        async with self.db.connection() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", [_ROTATION_LOCK])
            cursor = await conn.execute(
                "SELECT kid, private_key_pem, private_key_sealed, kek_id FROM signing_keys "
                "WHERE private_key_pem IS NOT NULL OR kek_id IS DISTINCT FROM %s",
                [self.sealer.kek_id],
            )
            for row in await cursor.fetchall():
                try:
                    der = _private_der(self.sealer, row)
                except SealError as err:
                    log.warning("signing key %s cannot be opened: %s", row["kid"], err)
                    continue
                await conn.execute(
                    "UPDATE signing_keys SET private_key_sealed = %s, kek_id = %s, private_key_pem = NULL "
                    "WHERE kid = %s",
                    [self.sealer.seal(der, context=row["kid"]), self.sealer.kek_id, row["kid"]],
                )
                done += 1
        return done

    async def prepare(self) -> SigningKey:
        """Start-up: seal what is stored, then make sure a key to sign with exists."""
        await self.seal_stored()
        return await self.signing_key()

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
                SELECT kid, private_key_pem, private_key_sealed, kek_id, created_at,
                       created_at < now() - %s AS aged
                FROM signing_keys WHERE retired_at IS NULL
                """,
                [self.rotation_period],
            )
            row = await cursor.fetchone()
            if row is not None and not force and not row["aged"]:
                try:
                    return self._key_of(row)
                except SealError as err:
                    log.warning("signing key %s cannot be opened (%s): a new key takes over", row["kid"], err)
            return await self._create(conn)

    async def _create(self, conn: Connection) -> SigningKey:
        private_key = Ed25519PrivateKey.generate()
        jwk = public_jwk(private_key)
        der = private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        await conn.execute("UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL")
        cursor = await conn.execute(
            """
            INSERT INTO signing_keys (kid, algorithm, private_key_sealed, kek_id, public_jwk)
            VALUES (%s, %s, %s, %s, %s) RETURNING created_at
            """,
            [jwk["kid"], ALGORITHM, self.sealer.seal(der, context=jwk["kid"]), self.sealer.kek_id, Jsonb(jwk)],
        )
        row = await cursor.fetchone()
        assert row is not None
        return SigningKey(jwk["kid"], private_key, row["created_at"])

    def _key_of(self, row: dict[str, Any]) -> SigningKey:
        key = serialization.load_der_private_key(_private_der(self.sealer, row), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise TypeError(f"signing key {row['kid']} is not an Ed25519 key")
        return SigningKey(row["kid"], key, row["created_at"])


def _private_der(sealer: Sealer, row: dict[str, Any]) -> bytes:
    """The private key of a row (PKCS#8 DER): opened, or read from a PEM stored before sealing."""
    if row["private_key_sealed"] is not None:
        return sealer.open(bytes(row["private_key_sealed"]), kek_id=row["kek_id"], context=row["kid"])
    key = serialization.load_pem_private_key(row["private_key_pem"].encode(), password=None)
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
