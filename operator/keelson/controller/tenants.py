"""The status of each PlatformService, written by the pass of the platform it names.

A PlatformService gets two conditions: Accepted (Attached, or the reason it was refused, from
`keelson.tenancy`) and Ready (its Deployment available). Like the platform's own status, it is
written only when it changes, so an idle platform with attached services still writes nothing;
and as there, the watch cache can lag our own write, so what we wrote is remembered until the
cache shows it (or a newer version).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keelson.api.status import ServiceStatus
from keelson.controller.conditions import ConditionState, merge_conditions
from keelson.kube.client import ApiError, KubeClient
from keelson.kube.resources import PLATFORM_SERVICE_KIND
from keelson.tenancy import ACCEPTED, Verdict

log = logging.getLogger("keelson.tenants")

READY = "Ready"


@dataclass(frozen=True)
class _Written:
    over: str  # the version our write replaced
    made: str
    status: dict[str, Any]


def tenant_conditions(verdict: Verdict, service: ServiceStatus | None) -> list[ConditionState]:
    accepted = ConditionState(ACCEPTED, "True" if verdict.accepted else "False", verdict.reason, verdict.message)
    if not verdict.accepted:
        ready = ConditionState(READY, "False", "NotAccepted", "not attached to the platform: see Accepted")
    elif service is None or not service.ready:
        counts = f"{service.readyReplicas}/{service.desiredReplicas}" if service is not None else "0/0"
        ready = ConditionState(READY, "False", "Progressing", f"{counts} replicas ready")
    elif waiting := [c for c in service.components or () if not c.ready]:
        ready = ConditionState(
            READY, "False", "ComponentsProgressing", f"waiting for component {waiting[0].name} ({waiting[0].reason})"
        )
    else:
        ready = ConditionState(READY, "True", "Available", f"{service.readyReplicas} replicas ready")
    return [accepted, ready]


def tenant_status(
    verdict: Verdict,
    previous: Mapping[str, Any],
    *,
    platform: tuple[str, str] | None,
    service: ServiceStatus | None,
    url: str | None,
    now: str,
) -> dict[str, Any]:
    conditions = merge_conditions(
        previous.get("conditions"), tenant_conditions(verdict, service), generation=verdict.generation, now=now
    )
    status: dict[str, Any] = {"observedGeneration": verdict.generation, "conditions": conditions}
    if platform is not None:
        status["platform"] = f"{platform[0]}/{platform[1]}"
    if verdict.accepted and url:
        status["url"] = url
    return status


class TenantStatusWriter:
    """Writes PlatformServices' statuses when they change; remembers its writes (see module)."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self._written: dict[str, _Written] = {}

    def live_status(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        written = self._written.get(str(meta.get("uid", "")))
        if written is not None and meta.get("resourceVersion") == written.over:
            return written.status  # the cache has not caught up with our write yet
        return dict(obj.get("status") or {})

    async def write(self, obj: Mapping[str, Any], status: dict[str, Any]) -> bool:
        """Write `status` unless it is what the object has; True when a write was made."""
        meta = obj.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        if status == self.live_status(obj):
            return False
        written = self._written.get(uid)
        rv = written.made if written is not None and meta.get("resourceVersion") == written.over else None
        rv = rv or str(meta.get("resourceVersion", ""))
        try:
            made = await self.client.replace_status(
                PLATFORM_SERVICE_KIND, str(meta.get("namespace")), str(meta.get("name")), status, resource_version=rv
            )
        except ApiError as exc:
            if exc.status in (404, 409):
                return False  # gone, or a newer version whose watch event brings another pass
            raise
        self._written[uid] = _Written(over=str(meta.get("resourceVersion", "")), made=made, status=status)
        if len(self._written) > 10_000:
            self._written.clear()
        return True
