"""Access token verification as the gateway does it: EdDSA signatures from a JWKS (cached,
refreshed for unknown key ids), issuer, audience and lifetime; everything else is a 401."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import pytest

from keelson_services.auth import InvalidTokenError, JwksCache, TokenVerifier
from tests.unit.svc_helpers import AUDIENCE, ISSUER, NOW, FakeClock, Signer


class Jwks:
    """The users service's JWKS endpoint, counting fetches."""

    def __init__(self, *signers: Signer) -> None:
        self.keys = [s.jwk for s in signers]
        self.fetches = 0
        self.down = False
        self.slow: asyncio.Event | None = None  # set: answers only once the event is set
        self.counted = asyncio.Condition()

    async def __call__(self) -> Mapping[str, Any]:
        self.fetches += 1
        async with self.counted:
            self.counted.notify_all()
        if self.slow is not None:
            await self.slow.wait()
        if self.down:
            raise ConnectionError("users is down")
        return {"keys": list(self.keys)}


def verifier(jwks: Jwks, clock: FakeClock | None = None, wall: float = NOW + 60) -> TokenVerifier:
    cache = JwksCache(jwks, ttl_seconds=300, refresh_cooldown_seconds=5, clock=clock or FakeClock())
    return TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=30, clock=lambda: wall)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def rejected(v: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidTokenError) as refused:
        await v.verify(token)
    assert refused.value.status_code == 401 and refused.value.code == "invalid_token"
    assert refused.value.headers is not None and refused.value.headers["WWW-Authenticate"].startswith("Bearer")
    return refused.value.reason


async def test_a_valid_token_yields_the_callers_identity() -> None:
    signer = Signer()
    claims = await verifier(Jwks(signer)).verify(signer.token(roles=["admin", "customer"]))
    assert claims.identity().user_id == "user-1" and claims.identity().roles == {"admin", "customer"}


async def test_an_expired_token_is_rejected_after_the_leeway() -> None:
    signer = Signer()
    token = signer.token(exp=NOW + 900)
    await verifier(Jwks(signer), wall=NOW + 920).verify(token)  # within 30 s of leeway
    assert await rejected(verifier(Jwks(signer), wall=NOW + 931), token) == "expired"


async def test_a_token_from_the_future_is_rejected() -> None:
    signer = Signer()
    assert await rejected(verifier(Jwks(signer), wall=NOW - 100), signer.token()) == "not yet valid"


async def test_a_tampered_payload_is_rejected() -> None:
    signer = Signer()
    header, _, signature = signer.token().split(".")
    forged = b64({"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "roles": ["admin"], "iat": NOW, "exp": NOW + 900})
    assert await rejected(verifier(Jwks(signer)), f"{header}.{forged}.{signature}") == "bad signature"


async def test_a_tampered_signature_is_rejected() -> None:
    signer = Signer()
    header, payload, signature = signer.token().split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert await rejected(verifier(Jwks(signer)), f"{header}.{payload}.{flipped}") == "bad signature"


async def test_a_token_signed_by_another_key_under_a_known_key_id_is_rejected() -> None:
    signer, impostor = Signer(), Signer()
    assert await rejected(verifier(Jwks(signer)), impostor.token(kid=signer.kid)) == "bad signature"


async def test_wrong_audience_and_wrong_issuer_are_rejected() -> None:
    signer = Signer()
    v = verifier(Jwks(signer))
    assert await rejected(v, signer.token(aud="urn:keelson:other:api")) == "wrong audience"
    assert await rejected(v, signer.token(iss="https://evil.example")) == "wrong issuer"


async def test_alg_none_is_rejected() -> None:
    signer = Signer()
    header = b64({"alg": "none", "kid": signer.kid, "typ": "JWT"})
    payload = b64({"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "roles": ["admin"], "iat": NOW, "exp": NOW + 900})
    assert await rejected(verifier(Jwks(signer)), f"{header}.{payload}.") == "unsupported algorithm"


async def test_hmac_signed_with_the_public_key_is_rejected() -> None:
    """The classic algorithm confusion: HS256 keyed with the (public) verification key."""
    signer = Signer()
    header = b64({"alg": "HS256", "kid": signer.kid, "typ": "JWT"})
    payload = b64({"iss": ISSUER, "aud": AUDIENCE, "sub": "u", "roles": ["admin"], "iat": NOW, "exp": NOW + 900})
    mac = hmac.new(signer.jwk["x"].encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    assert await rejected(verifier(Jwks(signer)), f"{header}.{payload}.{signature}") == "unsupported algorithm"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "....."])
async def test_malformed_tokens_are_rejected(token: str) -> None:
    assert await rejected(verifier(Jwks(Signer())), token) == "malformed token"


async def test_required_claims_must_be_present() -> None:
    signer = Signer()
    assert await rejected(verifier(Jwks(signer)), signer.token(exp=None)) == "missing claim exp"
    assert await rejected(verifier(Jwks(signer)), signer.token(sub=None)) == "missing claim sub"


async def test_a_rotated_key_is_fetched_on_first_sight_and_fetches_for_unknown_ids_are_spaced() -> None:
    old, new = Signer(), Signer()
    jwks, clock = Jwks(old), FakeClock()
    v = verifier(jwks, clock)
    await v.verify(old.token())
    assert jwks.fetches == 1
    jwks.keys.append(new.jwk)  # the users service rotated
    await v.verify(new.token())
    await v.verify(old.token())  # old tokens stay valid
    assert jwks.fetches == 2
    stranger = Signer()
    assert await rejected(v, stranger.token()) == "unknown signing key"  # cooldown: 2nd forced refresh within 5 s
    assert await rejected(v, stranger.token()) == "unknown signing key"
    assert jwks.fetches == 2
    clock.advance(5)
    assert await rejected(v, stranger.token()) == "unknown signing key"
    assert jwks.fetches == 3


async def _fetched(jwks: Jwks, count: int) -> None:
    async with asyncio.timeout(2), jwks.counted:
        await jwks.counted.wait_for(lambda: jwks.fetches >= count)


async def test_known_keys_keep_working_when_the_jwks_cannot_be_refreshed() -> None:
    signer = Signer()
    jwks, clock = Jwks(signer), FakeClock()
    v = verifier(jwks, clock)
    await v.verify(signer.token())
    jwks.down = True
    clock.advance(301)  # past the TTL
    await v.verify(signer.token())
    await _fetched(jwks, 2)  # refreshed in the background, and failed
    await v.verify(signer.token())
    assert jwks.fetches == 2  # the next try waits out the cooldown (5 s)
    clock.advance(5)
    await v.verify(signer.token())
    await _fetched(jwks, 3)


async def test_a_slow_users_service_never_stalls_a_token_of_a_cached_key() -> None:
    signer = Signer()
    jwks, clock = Jwks(signer), FakeClock()
    v = verifier(jwks, clock)
    await v.verify(signer.token())
    jwks.slow = asyncio.Event()
    clock.advance(301)  # past the TTL: a refresh is due, and users does not answer
    async with asyncio.timeout(1):
        for _ in range(20):
            await v.verify(signer.token())  # served from the cache meanwhile
    await _fetched(jwks, 2)
    assert jwks.fetches == 2  # one refresh in flight, however many requests
    jwks.slow.set()


async def test_without_any_key_a_jwks_outage_is_not_mistaken_for_a_bad_token() -> None:
    jwks = Jwks(Signer())
    jwks.down = True
    with pytest.raises(ConnectionError):
        await verifier(jwks).verify(Signer().token())
