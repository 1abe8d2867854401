"""Verifying the users service's access tokens: signature against its JWKS, algorithm, issuer,
audience and lifetime. Every failure is the same 401 to the client (with the reason in the
message, never which part of a signature was wrong), so forged, expired and foreign tokens are
told apart only in logs and by the holder of the token.

Lifetimes are checked here against an injectable wall clock rather than inside PyJWT, so tests
can place "now" anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from keelson_services.auth.config import ALGORITHM
from keelson_services.auth.jwks import JwksCache
from keelson_services.errors import ApiError
from keelson_services.identity import Identity

WallClock = Callable[[], float]
REQUIRED_CLAIMS = ("sub", "iss", "aud", "exp", "iat")


class InvalidTokenError(ApiError):
    def __init__(self, reason: str) -> None:
        super().__init__(
            401,
            "invalid_token",
            f"The access token is not valid: {reason}",
            headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'},
        )
        self.reason = reason


@dataclass(frozen=True)
class AccessClaims:
    subject: str
    roles: frozenset[str]
    expires_at: float
    token_id: str | None
    raw: Mapping[str, Any]

    def identity(self) -> Identity:
        return Identity(self.subject, self.roles)


class TokenVerifier:
    def __init__(
        self,
        keys: JwksCache,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: float = 30.0,
        clock: WallClock = time.time,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway_seconds = leeway_seconds
        self._clock = clock

    async def verify(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise InvalidTokenError("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidTokenError("unsupported algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("no key id")
        key = await self.keys.key(kid)
        if key is None:
            raise InvalidTokenError("unknown signing key")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                # Lifetimes are checked below against the injected clock.
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidAudienceError:
            raise InvalidTokenError("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidTokenError("wrong issuer") from None
        except jwt.MissingRequiredClaimError as err:
            raise InvalidTokenError(f"missing claim {err.claim}") from None
        except jwt.InvalidSignatureError:
            raise InvalidTokenError("bad signature") from None
        except jwt.InvalidTokenError:
            raise InvalidTokenError("malformed token") from None
        return self._check_lifetime(claims)

    def _check_lifetime(self, claims: dict[str, Any]) -> AccessClaims:
        now = self._clock()
        exp, iat = _seconds(claims, "exp"), _seconds(claims, "iat")
        nbf = _seconds(claims, "nbf") if "nbf" in claims else iat
        if exp <= now - self.leeway_seconds:
            raise InvalidTokenError("expired")
        if nbf > now + self.leeway_seconds or iat > now + self.leeway_seconds:
            raise InvalidTokenError("not yet valid")
        subject = claims["sub"]
        roles = claims.get("roles", [])
        if not isinstance(subject, str) or not subject:
            raise InvalidTokenError("bad subject")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidTokenError("bad roles claim")
        jti = claims.get("jti")
        return AccessClaims(subject, frozenset(roles), exp, jti if isinstance(jti, str) else None, claims)


def _seconds(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTokenError(f"bad {name} claim")
    return float(value)
