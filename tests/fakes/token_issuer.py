"""A stand-in for the cluster's service-account issuer, for tests that run services without a
kubelet: it signs tokens of the shape kube-apiserver mints for projected `serviceAccountToken`
volumes (RS256, `iss`, `sub` = system:serviceaccount:<ns>:<name>, one audience, `exp`) and
publishes its key as a JWKS. The cluster tests that prove the mechanism use real API-server tokens
(TokenRequest); this keeps the other service tests free of a control plane."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from keelson.render.context import TokenIssuer

ISSUER = "https://kubernetes.default.svc.cluster.local"
KID = "test-issuer-key"


@functools.cache
def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeIssuer:
    def __init__(self, issuer: str = ISSUER, key: rsa.RSAPrivateKey | None = None, kid: str = KID) -> None:
        self.issuer = issuer
        self.key = key or _key()
        self.kid = kid

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token_issuer(self) -> TokenIssuer:
        return TokenIssuer(self.issuer, json.dumps(self.jwks(), sort_keys=True, separators=(",", ":")))

    def mint(
        self, namespace: str, account: str, audience: str, *, seconds: int = 3600, now: float | None = None
    ) -> str:
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.issuer,
            "sub": f"system:serviceaccount:{namespace}:{account}",
            "aud": [audience],
            "iat": issued,
            "nbf": issued,
            "exp": issued + seconds,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def write_tokens(self, directory: Path, namespace: str, account: str, audiences: dict[str, str]) -> Path:
        """One file per callee (name -> audience), as the projected volume lays them out."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, audience in audiences.items():
            (directory / name).write_text(self.mint(namespace, account, audience))
        return directory
