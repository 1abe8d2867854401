"""Secrets a service keeps in its database, sealed with a key-encryption key (KEK) it does not
keep there: AES-256-GCM, a random 96-bit nonce per seal, and associated data naming what is
sealed (a key's id), so that a sealed value copied onto another row does not open.

The KEK comes from the service's Secret (`KEELSON_KEY_ENCRYPTION_KEY`, 32 bytes in URL-safe
base64, which the operator generates once and keeps across password rotations). A database dump
or backup alone then holds nothing usable. To change the KEK, set the new one and the old one as
`KEELSON_PREVIOUS_KEY_ENCRYPTION_KEY`: start-up re-seals under the new one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keelson_services.settings import SettingsError

KEK_ENV = "KEELSON_KEY_ENCRYPTION_KEY"
PREVIOUS_KEK_ENV = "KEELSON_PREVIOUS_KEY_ENCRYPTION_KEY"
_NONCE_BYTES = 12


class SealError(Exception):
    """A sealed value that no configured key opens (another KEK, or tampered with)."""


def _kek(env: Mapping[str, str], name: str) -> bytes | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise SettingsError(f"{name} must be URL-safe base64") from None
    if len(key) != 32:
        raise SettingsError(f"{name} must be 32 bytes (256 bits) in base64, got {len(key)} bytes")
    return key


@dataclass(frozen=True)
class Sealer:
    current: bytes
    previous: bytes | None = None

    def __repr__(self) -> str:  # never print a key by accident
        return f"Sealer(kek_id={self.kek_id!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Sealer:
        current = _kek(env, KEK_ENV)
        if current is None:
            raise SettingsError(
                f"{KEK_ENV} is not set: the key that encrypts the signing keys at rest (the operator puts it "
                "in the service's database Secret; for a hand-run service, 32 random bytes in URL-safe base64)"
            )
        return cls(current, _kek(env, PREVIOUS_KEK_ENV))

    @staticmethod
    def id_of(key: bytes) -> str:
        return hashlib.sha256(b"keelson.kek:" + key).hexdigest()[:16]

    @property
    def kek_id(self) -> str:
        return self.id_of(self.current)

    def seal(self, plaintext: bytes, *, context: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + AESGCM(self.current).encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, *, kek_id: str, context: str) -> bytes:
        key = next((k for k in (self.current, self.previous) if k is not None and self.id_of(k) == kek_id), None)
        if key is None:
            raise SealError(f"sealed under key-encryption key {kek_id}, which is not configured")
        try:
            return AESGCM(key).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], context.encode())
        except InvalidTag:
            raise SealError(f"the value sealed for {context} does not open (tampered with?)") from None
