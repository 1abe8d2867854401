"""A local Web Push service (RFC 8030) for tests: it makes subscriptions as a browser's push
service would (an endpoint URL, and the client's P-256 key pair and auth secret, whose private
half stays here as it stays in the browser), and for every push it receives it checks the VAPID
signature (RFC 8292: an ES256 JWT for this origin, not expired, with a contact) and decrypts the
`aes128gcm` body (RFC 8291) with an implementation of its own, then records the plaintext.

A subscription can be made gone (404/410, as after a user revokes it) and the service can be
told to fail the next pushes with a status (429, 503)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keelson.devstack.standin import Answer, HttpStandIn, Request


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def vapid_private_key_pem() -> str:
    """A fresh VAPID key for the service under test (`KEELSON_VAPID_PRIVATE_KEY`)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@dataclass
class Subscription:
    id: str
    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(repr=False)
    auth: bytes = field(repr=False)
    gone: int | None = None  # 404 or 410 once the subscription is revoked

    @property
    def p256dh(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def json(self) -> dict[str, Any]:
        """The subscription as a browser's `PushSubscription.toJSON()` gives it."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": b64url(self.p256dh), "auth": b64url(self.auth)}}


@dataclass(frozen=True)
class Received:
    subscription: str
    payload: bytes
    claims: dict[str, Any]
    vapid_key: str  # the `k` of the Authorization header
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.payload)


class PushRefusedError(ValueError):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


def decrypt(body: bytes, *, key: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    """Undo RFC 8291's `aes128gcm` encryption of one message, as the user agent does."""
    if len(body) < 21:
        raise PushRefusedError(400, "body shorter than an aes128gcm header")
    salt, record_size, id_length = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    sender_public = body[21 : 21 + id_length]
    ciphertext = body[21 + id_length :]
    if len(ciphertext) > record_size:
        raise PushRefusedError(400, "more than one record")
    ua_public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    try:
        shared = key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_public))
    except ValueError:
        raise PushRefusedError(400, "key id is not a P-256 point") from None
    ikm = _hkdf(auth, shared, b"WebPush: info\x00" + ua_public + sender_public, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    try:
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
    except Exception:
        raise PushRefusedError(400, "does not decrypt") from None
    plain = padded.rstrip(b"\x00")
    if not plain.endswith(b"\x02"):
        raise PushRefusedError(400, "no last-record delimiter")
    return plain[:-1]


def verify_vapid(header: str, *, origin: str, now: float | None = None) -> tuple[dict[str, Any], str]:
    """The claims and key of a `vapid t=..., k=...` Authorization header, checked as RFC 8292 says."""
    scheme, _, params = header.partition(" ")
    if scheme.lower() != "vapid":
        raise PushRefusedError(401, "not a vapid authorization")
    fields = dict(part.strip().split("=", 1) for part in params.split(",") if "=" in part)
    if not {"t", "k"} <= fields.keys():
        raise PushRefusedError(401, "vapid needs t and k")
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
        claims: dict[str, Any] = jwt.decode(
            fields["t"], public, algorithms=["ES256"], audience=origin, options={"require": ["exp", "aud"]}
        )
    except (ValueError, jwt.PyJWTError) as exc:
        raise PushRefusedError(403, f"bad vapid token: {exc}") from None
    if claims["exp"] > (now or time.time()) + 24 * 3600:
        raise PushRefusedError(403, "vapid token lives longer than 24 hours")
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        raise PushRefusedError(403, "vapid token has no contact (sub)")
    return claims, fields["k"]


class PushService(HttpStandIn):
    def __init__(self) -> None:
        super().__init__()
        self.subscriptions: dict[str, Subscription] = {}
        self.received: list[Received] = []
        self.refused: list[tuple[int, str]] = []
        self._failures: list[int] = []

    def subscribe(self) -> Subscription:
        sub_id = secrets.token_urlsafe(12)
        sub = Subscription(
            sub_id, f"{self.url}/push/{sub_id}", ec.generate_private_key(ec.SECP256R1()), secrets.token_bytes(16)
        )
        with self.lock:
            self.subscriptions[sub_id] = sub
        return sub

    def fail_next(self, count: int, status: int = 503) -> None:
        with self.lock:
            self._failures.extend([status] * count)

    def for_subscription(self, sub: Subscription) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.subscription == sub.id]

    def answer(self, request: Request) -> Answer:
        prefix = "/push/"
        sub = self.subscriptions.get(request.path[len(prefix) :]) if request.path.startswith(prefix) else None
        if request.method != "POST" or sub is None:
            return Answer(404)
        with self.lock:
            if self._failures:
                return Answer(self._failures.pop(0), headers={"Retry-After": "1"})
        if sub.gone:
            return Answer(sub.gone)
        try:
            if request.headers.get("content-encoding") != "aes128gcm":
                raise PushRefusedError(415, "Content-Encoding must be aes128gcm")
            if not request.headers.get("ttl", "").isdigit():
                raise PushRefusedError(400, "TTL header required")
            claims, k = verify_vapid(request.headers.get("authorization", ""), origin=self.url)
            payload = decrypt(request.body, key=sub.key, auth=sub.auth)
        except PushRefusedError as exc:
            with self.lock:
                self.refused.append((exc.status, str(exc)))
            return Answer(exc.status, str(exc).encode())
        with self.lock:
            self.received.append(Received(sub.id, payload, claims, k, dict(request.headers)))
            location = f"{self.url}/message/{len(self.received)}"
        return Answer(201, headers={"Location": location})
