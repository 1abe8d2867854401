"""What the users service's tokens say and the gateway checks: signing algorithm, issuer and
audience. Both sides derive issuer and audience from the platform's name unless told otherwise
(`KEELSON_JWT_ISSUER`, `KEELSON_JWT_AUDIENCE`), so tokens of one platform are refused by another
platform's gateway even when both trust the same keys."""

from __future__ import annotations

from collections.abc import Mapping

from keelson_services import envconfig

# Ed25519 signatures: small keys, fast verification on the gateway's hot path, no parameter
# choices to get wrong. The only algorithm accepted, so `none` and HMAC confusion cannot pass.
ALGORITHM = "EdDSA"
JWKS_PATH = "/.well-known/jwks.json"


def issuer(env: Mapping[str, str], platform: str) -> str:
    return envconfig.text(env, "KEELSON_JWT_ISSUER", f"urn:keelson:{platform or 'local'}:users")


def audience(env: Mapping[str, str], platform: str) -> str:
    return envconfig.text(env, "KEELSON_JWT_AUDIENCE", f"urn:keelson:{platform or 'local'}:api")
