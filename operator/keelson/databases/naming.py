"""Names of a service's database, role and Secret. Pure.

PostgreSQL identifiers are at most 63 bytes (NAMEDATALEN - 1) and one server may host databases
of many platforms, in many namespaces, where two platforms can share a name. So a name is the
readable `<platform>_<service>` (dashes and dots become underscores) followed by a hash of the
exact namespace, platform and service: the readable part alone is ambiguous (`a-b`/`c` and
`a`/`b-c` both read `a_b_c`, and the namespace is not in it), the hash is not. The readable part
is cut to fit, never the hash. Roles named `pg_*` are reserved by PostgreSQL, hence the `k_`
prefix when the readable part would start that way.
"""

from __future__ import annotations

import hashlib
import re

MAX_IDENTIFIER = 63
HASH_LENGTH = 8
MAX_SECRET_NAME = 253
# The COMMENT put on every database and role Keelson creates: whose it is. Nothing is ever dropped
# or altered whose comment does not name the same namespace, platform and service.
OWNER_PREFIX = "keelson.dev/owner="


def _digest(*parts: str, length: int = HASH_LENGTH) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def identifier(namespace: str, platform: str, service: str) -> str:
    """The database name, which is also its owner role's name."""
    readable = re.sub(r"[^a-z0-9]", "_", f"{platform}_{service}".lower())
    if readable.startswith("pg_"):
        readable = f"k_{readable}"
    suffix = f"_{_digest(namespace, platform, service)}"
    return readable[: MAX_IDENTIFIER - len(suffix)] + suffix


def owner_comment(namespace: str, platform: str, service: str) -> str:
    return f"{OWNER_PREFIX}{namespace}/{platform}/{service}"


def secret_name(platform: str, service: str) -> str:
    """`<platform>-<service>-db`, the Secret with the service's credentials (hash-cut if too long)."""
    name = f"{platform}-{service}-db"
    if len(name) <= MAX_SECRET_NAME:
        return name
    suffix = f"-{_digest(platform, service)}-db"
    return name[: MAX_SECRET_NAME - len(suffix)].rstrip("-.") + suffix
