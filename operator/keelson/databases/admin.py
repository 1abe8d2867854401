"""The admin connection, read from the Secret `spec.databases.adminSecretRef` names. Pure.

The Secret holds either `uri` (a libpq URI or key=value string) or `host`, `port`, `user`,
`password` (and optionally `dbname`, `sslmode`). It is read on every pass and kept nowhere: not
copied into another object, not cached, not logged.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

DEFAULT_PORT = 5432


class AdminSecretInvalid(ValueError):
    """The admin Secret exists but does not hold a usable connection (the message names no value)."""


@dataclass(frozen=True)
class AdminConnection:
    conninfo: str  # holds the password: never log it
    host: str
    port: int
    sslmode: str | None

    def __repr__(self) -> str:
        return f"AdminConnection({self.host}:{self.port})"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


def parse_admin_secret(secret: dict[str, Any]) -> AdminConnection:
    raw = secret.get("data") or {}
    try:
        data = {k: base64.b64decode(v).decode() for k, v in raw.items()}
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdminSecretInvalid("a value is not valid base64 text") from exc
    if data.get("uri"):
        try:
            params = conninfo_to_dict(data["uri"])
        except Exception as exc:  # psycopg raises ProgrammingError; the message may quote the URI
            raise AdminSecretInvalid("key uri is not a valid libpq connection string") from exc
    else:
        missing = [k for k in ("host", "user", "password") if not data.get(k)]
        if missing:
            raise AdminSecretInvalid(
                f"needs key uri, or keys host, port, user, password (missing: {', '.join(missing)})"
            )
        params = {k: data[k] for k in ("host", "port", "user", "password", "dbname", "sslmode") if data.get(k)}
    params.setdefault("dbname", "postgres")
    host = str(params.get("host") or "")
    if not host or "," in host:
        raise AdminSecretInvalid("the connection must name exactly one host")
    try:
        port = int(params.get("port") or DEFAULT_PORT)
    except ValueError as exc:
        raise AdminSecretInvalid("port is not a number") from exc
    sslmode = str(params["sslmode"]) if params.get("sslmode") else None
    return AdminConnection(make_conninfo(**{k: str(v) for k, v in params.items()}), host, port, sslmode)
