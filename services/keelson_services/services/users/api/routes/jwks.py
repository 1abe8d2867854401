"""`GET /.well-known/jwks.json`: the public keys that verify access tokens (the gateway's)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from keelson_services.auth.config import JWKS_PATH
from keelson_services.services.users.deps import Components

router = APIRouter(tags=["keys"])


@router.get(JWKS_PATH, summary="Public keys of the token signers (JWKS)")
async def jwks(parts: Components) -> JSONResponse:
    # Short caching: a rotation's new key must reach verifiers quickly (they also refetch on an
    # unknown key id).
    return JSONResponse(await parts.keys.jwks(), headers={"Cache-Control": "public, max-age=60"})
