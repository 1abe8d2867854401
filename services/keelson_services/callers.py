"""Which service is calling: Kubernetes ServiceAccount tokens, one audience per callee.

Identity headers (`X-User-Id`, `X-User-Roles`) say whom a call acts for; they are believed only
when the call also proves which service sent it. The proof is a ServiceAccount token the kubelet
mints for the caller's pod (a projected `serviceAccountToken` volume, one file per service it
calls, each with that callee's audience, rotated by the kubelet): signed by the cluster's
service-account issuer, naming the caller's ServiceAccount in `sub`, good for one callee only.

Why these tokens and not mutual TLS or keys of our own: the cluster already issues, rotates and
publishes them (the issuer's JWKS at `/openid/v1/jwks`), so there is no certificate authority or
key store to run; a token for one callee cannot be replayed to another (the audience); and
any language's JWT library can send and verify them, for services that are not ours.

A callee accepts a call when the token verifies against the issuer's keys (RS256 or ES256),
its audience is the callee's, it has not expired, and its subject is one of the callers the
platform declares (`calls` in the spec, and the gateway for exposed services). Everything else
is a 401 in the one error format; the probes and `/metrics` stay open to the kubelet and
Prometheus.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from keelson_services.errors import ApiError

WallClock = Callable[[], float]
ALGORITHMS = ("RS256", "ES256")  # what kube-apiserver signs service-account tokens with
LEEWAY_SECONDS = 30.0


class CallerRefusedError(ApiError):
    def __init__(self, reason: str) -> None:
        super().__init__(
            401,
            "unauthenticated_caller",
            f"This service accepts calls only from the services the platform declares: {reason}",
            headers={"WWW-Authenticate": 'Bearer realm="keelson-services"'},
        )
        self.reason = reason


@dataclass(frozen=True)
class CallerPolicy:
    """Who may call this service, as the operator rendered it into the service's ConfigMap."""

    audience: str
    allowed: Mapping[str, str]  # ServiceAccount subject -> caller service name
    issuer: str | None = None
    jwks: Mapping[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CallerPolicy | None:
        """None when the environment declares no callers policy (a service not run by the operator)."""
        raw_allowed = env.get("KEELSON_ALLOWED_CALLERS", "").strip()
        if not raw_allowed:
            return None
        allowed = _json_object(raw_allowed, "KEELSON_ALLOWED_CALLERS")
        audience = env.get("KEELSON_CALLER_AUDIENCE", "").strip()
        if not audience:
            raise ValueError("KEELSON_CALLER_AUDIENCE must be set with KEELSON_ALLOWED_CALLERS")
        raw_jwks = env.get("KEELSON_CALLER_JWKS", "").strip()
        return cls(
            audience=audience,
            allowed={str(k): str(v) for k, v in allowed.items()},
            issuer=env.get("KEELSON_CALLER_ISSUER", "").strip() or None,
            jwks=_json_object(raw_jwks, "KEELSON_CALLER_JWKS") if raw_jwks else None,
        )


def _json_object(raw: str, name: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as err:
        raise ValueError(f"{name} is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object")
    return value


class CallerVerifier:
    """Verifies the bearer token of an internal call; returns the calling service's name."""

    def __init__(self, policy: CallerPolicy, *, clock: WallClock = time.time) -> None:
        self.policy = policy
        self.clock = clock
        self._keys: dict[str, Any] = {}
        self._anonymous: list[Any] = []  # keys without a kid
        for key in (policy.jwks or {}).get("keys", []):
            if not isinstance(key, dict) or key.get("use", "sig") != "sig":
                continue
            try:
                parsed = jwt.PyJWK.from_dict(key)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue  # a key type we cannot use is not one our tokens are signed with
            if key.get("kid"):
                self._keys[str(key["kid"])] = parsed.key
            else:
                self._anonymous.append(parsed.key)

    def verify(self, authorization: str | None) -> str:
        if not self._keys and not self._anonymous:
            raise CallerRefusedError("the platform gave this service no keys to verify callers with")
        if not authorization or not authorization[:7].lower() == "bearer ":
            raise CallerRefusedError("no service token (Authorization: Bearer ...)")
        token = authorization[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise CallerRefusedError("the service token is malformed") from None
        if header.get("alg") not in ALGORITHMS:
            raise CallerRefusedError("the service token's algorithm is not accepted")
        kid = header.get("kid")
        candidates = [self._keys[kid]] if isinstance(kid, str) and kid in self._keys else self._anonymous
        claims = self._decode(token, candidates)
        now = self.clock()
        if float(claims.get("exp", 0)) + LEEWAY_SECONDS < now:
            raise CallerRefusedError("the service token has expired")
        if float(claims.get("nbf", 0)) - LEEWAY_SECONDS > now:
            raise CallerRefusedError("the service token is not valid yet")
        subject = str(claims.get("sub", ""))
        caller = self.policy.allowed.get(subject)
        if caller is None:
            raise CallerRefusedError(f"{subject or 'the caller'} is not a declared caller of this service")
        return caller

    def _decode(self, token: str, keys: list[Any]) -> dict[str, Any]:
        options = {"verify_exp": False, "verify_nbf": False, "verify_iat": False, "require": ["sub", "aud", "exp"]}
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=list(ALGORITHMS),
                    audience=self.policy.audience,
                    issuer=self.policy.issuer,
                    options=options,  # type: ignore[arg-type]
                )
                return claims
            except jwt.InvalidAudienceError:
                raise CallerRefusedError("the service token is for another service") from None
            except jwt.InvalidIssuerError:
                raise CallerRefusedError("the service token is from another issuer") from None
            except jwt.MissingRequiredClaimError as err:
                raise CallerRefusedError(f"the service token has no {err.claim!r} claim") from None
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError:
                raise CallerRefusedError("the service token is malformed") from None
        raise CallerRefusedError("the service token's signature does not verify")


class CallTokens:
    """The caller's side: the token for each service it calls, from the projected volume.

    The kubelet rewrites the files before they expire, so a file is re-read when it changes."""

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory else None
        self._cache: dict[str, tuple[float, str]] = {}

    def authorization(self, downstream: str) -> str | None:
        """`Bearer <token>` for calls to `downstream`, or None when there is no token for it."""
        if self.directory is None:
            return None
        path = self.directory / downstream
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        cached = self._cache.get(downstream)
        if cached is None or cached[0] != mtime:
            try:
                token = path.read_text().strip()
            except OSError:
                return None
            cached = (mtime, token)
            self._cache[downstream] = cached
        return f"Bearer {cached[1]}" if cached[1] else None
