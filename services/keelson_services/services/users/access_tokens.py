"""Access tokens: short-lived JWTs (RFC 9068 shape) signed with the key ring's current key.

Claims: `iss`, `aud`, `sub` (the user id), `roles`, `email_verified`, `ver` (the account's token
version: raising it revokes every token issued before), `iat`, `nbf`, `exp`, `jti`; header `kid`
names the key, `typ` is `at+jwt`. Services behind the gateway never see the token, only the
identity the gateway derived from it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import timedelta

import jwt

from keelson_services.auth.config import ALGORITHM
from keelson_services.services.users.repository import User
from keelson_services.services.users.signing_keys import KeyRing


class AccessTokens:
    def __init__(
        self, keys: KeyRing, *, issuer: str, audience: str, ttl: timedelta, clock: Callable[[], float] = time.time
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self._clock = clock

    async def issue(self, user: User) -> str:
        key = await self.keys.signing_key()
        now = int(self._clock())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user.id),
            "roles": sorted(user.roles),
            "email_verified": user.email_verified,
            "ver": user.token_version,
            "iat": now,
            "nbf": now,
            "exp": now + int(self.ttl.total_seconds()),
            "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "at+jwt"})

    @property
    def expires_in(self) -> int:
        return int(self.ttl.total_seconds())
