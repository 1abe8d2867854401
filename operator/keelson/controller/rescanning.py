"""Watching the optional kinds whose CRDs are installed while the operator runs.

kopf re-discovers an API group on every event of one of its CRDs, in one worker per CRD, and each
rescan replaces what kopf serves of that group. When two CRDs of one group appear together
(CloudNativePG's Cluster and Database, the Prometheus Operator's ServiceMonitor and
PrometheusRule), the rescan woken by the first can list the group before the second is served and
land after the one woken by the second: kopf then drops the second kind and never watches it, so
its index stays empty, and the operator re-applies objects it cannot see and never repairs them
(until a restart).

The workaround here needs no restart: every `RESCAN_SECONDS`, for each group with a child kind
that kopf does not watch, it lists the group's discovery and revises kopf's insights exactly as
kopf's own observer does (its functions, under its lock); kopf's orchestrator then starts the
watch and the index fills. Once every kind is watched it sends nothing. This reaches into kopf's
private modules (`kopf._cogs`, `kopf._core`); tests/unit/test_rescanning.py runs the real ones,
reproducing the race, so an upgrade that changes them fails there first.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

from kopf._cogs.clients import scanning
from kopf._cogs.structs import references
from kopf._core.reactor import observation

from keelson.kube.resources import Kind

log = logging.getLogger("keelson.rescanning")

RESCAN_SECONDS = float(os.environ.get("KEELSON_RESCAN_SECONDS", "10"))

Scan = Callable[..., Awaitable[Collection[references.Resource]]]


def unwatched(insights: references.Insights, kinds: Iterable[Kind]) -> list[Kind]:
    """The kinds kopf neither watches nor indexes now (their CRD may simply not be installed)."""
    served = {(r.group, r.plural) for r in insights.watched_resources & insights.indexed_resources}
    return [k for k in kinds if (k.group, k.plural) not in served]


async def rescan(
    *,
    insights: references.Insights,
    registry: Any,
    settings: Any,
    kinds: Iterable[Kind],
    scan: Scan = scanning.scan_resources,
) -> list[Kind]:
    """Revise kopf's insights for each group with an unwatched kind that is served; the kinds
    that are watched now and were not before."""
    missing = unwatched(insights, kinds)
    restored: list[Kind] = []
    for group in sorted({k.group for k in missing}):
        # Under kopf's own lock, so that no rescan of kopf's can interleave with this one.
        async with insights.revised:
            resources = await scan(groups={group}, settings=settings, logger=log)
            served = {(r.group, r.plural) for r in resources}
            found = [k for k in missing if k.group == group and (k.group, k.plural) in served]
            if not found:
                continue  # not installed (yet): nothing to revise
            observation.revise_resources(resources=resources, insights=insights, registry=registry, group=group)
            await insights.backbone.fill(resources=resources)
            insights.revised.notify_all()
        now_missing = {(k.group, k.plural) for k in unwatched(insights, found)}
        restored.extend(k for k in found if (k.group, k.plural) not in now_missing)
    for kind in restored:
        log.warning("kopf was not watching %s although its CRD is served; watching it now", kind.kind)
    return restored


async def keep_watching(
    *,
    insights: references.Insights,
    registry: Any,
    settings: Any,
    kinds: Iterable[Kind],
    interval: float = RESCAN_SECONDS,
) -> None:
    """Run `rescan` for ever; a failed rescan (the API server away) is tried again next time."""
    kinds = tuple(kinds)
    await insights.ready_resources.wait()
    while True:
        await asyncio.sleep(interval)
        try:
            await rescan(insights=insights, registry=registry, settings=settings, kinds=kinds)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("rescan of the API groups failed; trying again in %.0fs", interval, exc_info=True)
