"""Web Push message encryption (RFC 8291, `aes128gcm` of RFC 8188) and VAPID (RFC 8292): pure
functions, no I/O. The sender (`senders.WebPushSender`) posts their output to a subscription's
endpoint; the local push service of the tests (`tests/fakes/push_service.py`) undoes them with an
implementation of its own, so the two check each other.

Why not pywebpush: it brings its own HTTP client (requests), where the notifications service
sends through the platform's resilient client like every other call; the two primitives it
would give us are short and fixed by the RFCs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

RECORD_SIZE = 4096
# One record of RECORD_SIZE holds the payload, its delimiter and the 16-byte tag; the header
# (salt, record size, key id length, key id) comes on top, within the 4096 bytes push services take.
MAX_PAYLOAD = RECORD_SIZE - 86 - 1 - 16
VAPID_LIFETIME_SECONDS = 12 * 3600  # RFC 8292: at most 24 hours


class SubscriptionKeyError(ValueError):
    """A subscription's `p256dh` or `auth` that cannot be a client's Web Push key."""


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def client_keys(p256dh: str, auth: str) -> tuple[bytes, bytes]:
    """The subscription's public key (65-byte uncompressed P-256 point) and auth secret (16
    bytes), decoded and checked: a point off the curve would only fail at the first send."""
    try:
        public, secret = b64url_decode(p256dh), b64url_decode(auth)
    except (binascii.Error, ValueError):
        raise SubscriptionKeyError("keys must be base64url") from None
    if len(secret) != 16:
        raise SubscriptionKeyError("auth must be 16 bytes (base64url)")
    if len(public) != 65 or public[0] != 4:
        raise SubscriptionKeyError("p256dh must be an uncompressed P-256 point (65 bytes, base64url)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public)
    except ValueError:
        raise SubscriptionKeyError("p256dh is not a point on P-256") from None
    return public, secret


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA-256 (RFC 5869) for one output block, which every length here fits in."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


def encrypt(payload: bytes, *, p256dh: bytes, auth: bytes, salt: bytes | None = None) -> bytes:
    """`payload` as an `aes128gcm` body for the subscription (RFC 8291 §3.4), one record,
    with a fresh ephemeral key (its public half is the header's key id) and salt."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a push payload holds at most {MAX_PAYLOAD} bytes, got {len(payload)}")
    salt = salt or os.urandom(16)
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    as_public = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    shared = ephemeral.exchange(ec.ECDH(), ua_key)
    ikm = _hkdf(auth, shared, b"WebPush: info\x00" + p256dh + as_public, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    ciphertext = AESGCM(cek).encrypt(nonce, payload + b"\x02", None)  # 0x02: the last record
    header = salt + RECORD_SIZE.to_bytes(4, "big") + bytes([len(as_public)]) + as_public
    return header + ciphertext


@dataclass(frozen=True)
class Vapid:
    """The application server's identity towards push services."""

    key: ec.EllipticCurvePrivateKey
    subject: str

    @classmethod
    def from_pem(cls, pem: str, *, subject: str) -> Vapid:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("a VAPID key is a P-256 private key")
        return cls(key, subject)

    @property
    def public_key(self) -> str:
        """The key clients subscribe with (`applicationServerKey`), base64url."""
        raw = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(raw)

    def authorization(self, endpoint: str, *, now: float | None = None) -> str:
        """The `Authorization: vapid t=<JWT>, k=<public key>` header for a push to `endpoint`:
        an ES256 JWT whose audience is the push service's origin (RFC 8292 §2)."""
        parts = urlsplit(endpoint)
        claims = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int((time.time() if now is None else now) + VAPID_LIFETIME_SECONDS),
            "sub": self.subject,
        }
        token = jwt.encode(claims, self.key, algorithm="ES256", headers={"typ": "JWT"})
        return f"vapid t={token}, k={self.public_key}"
