"""Where a public request goes: the platform's routes (`KEELSON_ROUTES`, one path prefix per
exposed service, rendered by the operator from `expose.path`) under the public prefix `/api/v1`.

The public API groups operations by the prefix that owns them (`/auth/*` and `/admin/users`
belong to the service exposed at `/users`, see `api/routes/`); paths the public API does not
name are matched by longest prefix, so a custom service exposed at `/inventory` is reachable at
`/api/v1/inventory/...` without a gateway change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from keelson_services.errors import ApiError
from keelson_services.settings import Route

PUBLIC_PREFIX = "/api/v1"


@dataclass(frozen=True)
class Target:
    service: str
    prefix: str


class RouteTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        self._by_prefix = {self._normal(r.path): Target(r.service, self._normal(r.path)) for r in routes}
        self._longest_first = sorted(self._by_prefix, key=len, reverse=True)

    @staticmethod
    def _normal(path: str) -> str:
        return "/" + path.strip("/")

    def for_area(self, prefix: str) -> Target:
        """The service exposed at `prefix` (a public API operation's owner)."""
        found = self._by_prefix.get(self._normal(prefix))
        if found is None:
            raise not_routed(PUBLIC_PREFIX + prefix)
        return found

    def match(self, public_path: str) -> Target:
        """The service for any path under `/api/v1`, by longest matching prefix."""
        if not public_path.startswith(PUBLIC_PREFIX + "/"):
            raise not_routed(public_path)
        rest = public_path[len(PUBLIC_PREFIX) :]
        for prefix in self._longest_first:
            if rest == prefix or rest.startswith(prefix + "/"):
                return self._by_prefix[prefix]
        raise not_routed(public_path)


def not_routed(path: str) -> ApiError:
    return ApiError(404, "not_found", f"No service of this platform serves {path}")
