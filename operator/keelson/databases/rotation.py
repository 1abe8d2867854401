"""The `keelson.dev/rotate-credentials` annotation: deliberate password rotation. Pure.

Value: `<token>` rotates every service's database password once; `<service>[,<service>...]@<token>`
rotates only those. The token is any string (a timestamp is handy); each service's Secret records
the last token it was rotated for (annotation `keelson.dev/rotation-token`), so a value that stays
on the platform rotates nothing again: to rotate once more, set a new token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROTATE_ANNOTATION = "keelson.dev/rotate-credentials"
TOKEN_ANNOTATION = "keelson.dev/rotation-token"
_SERVICE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Rotation:
    token: str
    services: frozenset[str] | None  # None: every service

    def targets(self, service: str) -> bool:
        return self.services is None or service in self.services

    def due(self, service: str, recorded: str | None) -> bool:
        """Whether the service's password must be rotated now, given the token its Secret records."""
        return self.targets(service) and recorded != self.token


def parse(value: str | None) -> Rotation | None:
    """The requested rotation, or None when there is none or the value is malformed."""
    value = (value or "").strip()
    if not value:
        return None
    head, at, token = value.partition("@")
    if not at:
        return Rotation(value, None)
    names = [n.strip() for n in head.split(",") if n.strip()]
    if not token.strip() or not names or not all(_SERVICE.match(n) for n in names):
        return None
    return Rotation(token.strip(), frozenset(names))
