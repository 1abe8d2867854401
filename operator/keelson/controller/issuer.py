"""The cluster's service-account issuer, for services that verify each other's tokens.

Services prove which service is calling with ServiceAccount tokens (render/callers.py); the
callee verifies them with the issuer's public keys. The operator reads the issuer's discovery
document and JWKS from the API server at start and on every resync, and renders them into the
services' ConfigMaps: the services then need neither API access nor an egress rule to the API
server, and a rotated signing key reaches them (and rolls their pods, through the ConfigMap's
checksum) within a resync.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from keelson.render.context import TokenIssuer

log = logging.getLogger("keelson.operator")

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"


class PathReader(Protocol):
    async def get_path(self, path: str) -> dict[str, Any]: ...


def token_issuer(discovery: dict[str, Any], jwks: dict[str, Any]) -> TokenIssuer | None:
    """The issuer and its keys, or None when the documents do not describe one. Pure."""
    issuer = discovery.get("issuer")
    keys = jwks.get("keys")
    if not isinstance(issuer, str) or not issuer or not isinstance(keys, list) or not keys:
        return None
    return TokenIssuer(issuer=issuer, jwks=json.dumps({"keys": keys}, sort_keys=True, separators=(",", ":")))


class IssuerCheck:
    """The last issuer read, and a log line whenever it changes."""

    def __init__(self, reader: PathReader) -> None:
        self.reader = reader
        self.issuer: TokenIssuer | None = None
        self._checked = False

    async def run(self) -> TokenIssuer | None:
        try:
            found = token_issuer(await self.reader.get_path(DISCOVERY_PATH), await self.reader.get_path(JWKS_PATH))
        except Exception as exc:  # a failed read says nothing new: keep what we had
            if self.issuer is None:
                log.warning(
                    "could not read the service-account issuer (%s, %s): %s; services refuse internal calls "
                    "until it is read",
                    DISCOVERY_PATH,
                    JWKS_PATH,
                    exc,
                )
            return self.issuer
        if not self._checked or found != self.issuer:
            if found is None:
                log.error("the API server publishes no service-account issuer keys at %s", JWKS_PATH)
            else:
                log.info(
                    "service-account issuer %s read (%d key(s))", found.issuer, len(json.loads(found.jwks)["keys"])
                )
        self.issuer, self._checked = found, True
        return found
