"""Access tokens: the shared definitions, the JWKS cache and the verifier the gateway uses."""

from keelson_services.auth.config import ALGORITHM, JWKS_PATH
from keelson_services.auth.jwks import JwksCache, parse_jwks
from keelson_services.auth.verifier import AccessClaims, InvalidTokenError, TokenVerifier

__all__ = ["ALGORITHM", "JWKS_PATH", "AccessClaims", "InvalidTokenError", "JwksCache", "TokenVerifier", "parse_jwks"]
