"""One reconcile pass of one platform: render, apply what drifted, prune, report.

Level-based: it compares the desired objects with the watch caches every time, whatever woke it
(a spec change, a child's event, a resync), and writes only what differs. An unchanged, ready
platform therefore costs no write at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.controller import metrics
from keelson.controller.cache import ChildCache, controller_uid
from keelson.controller.conditions import ConditionState, merge_conditions, transitions
from keelson.controller.drift import needs_apply, with_hash
from keelson.controller.status import (
    PAUSED,
    READY,
    Observations,
    build_status,
    ready_condition,
    routes_condition,
    service_statuses,
    workloads_condition,
)
from keelson.kube.client import ApiError, KubeClient
from keelson.kube.resources import EVENT_KIND, PLATFORM_KIND, key_of, kind_of
from keelson.render import RenderContext, render_platform

log = logging.getLogger("keelson.reconciler")

PAUSE_ANNOTATION = "keelson.dev/reconcile"
ROUTE_KINDS = ("Ingress", "HTTPRoute")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Outcome:
    writes: int = 0
    ready: bool = False
    retry: bool = False  # a transient failure: try again with backoff
    errors: list[str] = field(default_factory=list)


def owner_reference(platform: dict[str, Any]) -> dict[str, Any]:
    meta = platform["metadata"]
    return {
        "apiVersion": PLATFORM_KIND.api_version,
        "kind": PLATFORM_KIND.kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class Reconciler:
    def __init__(
        self,
        client: KubeClient,
        cache: ChildCache,
        *,
        reference_image: str,
        concurrency: int = 8,
        now: Callable[[], str] = _now,
    ) -> None:
        self.client = client
        self.cache = cache
        self.reference_image = reference_image
        self.now = now
        self._writes = asyncio.Semaphore(concurrency)

    async def reconcile(self, platform: dict[str, Any]) -> Outcome:
        started = time.monotonic()
        outcome = Outcome()
        try:
            await self._reconcile(platform, outcome)
        finally:
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
            if outcome.errors:
                metrics.RECONCILE_ERRORS.inc()
        return outcome

    async def _reconcile(self, platform: dict[str, Any], outcome: Outcome) -> None:
        meta = platform["metadata"]
        if meta.get("deletionTimestamp"):
            return  # children go with the platform through their owner references
        name, namespace, generation = meta["name"], meta["namespace"], meta.get("generation", 0)
        try:
            model = MicroservicePlatform.from_object(platform)
        except ValidationError as exc:
            # Admission (CEL) should have refused it; report rather than guess.
            cond = ConditionState(READY, "False", "InvalidSpec", _validation_summary(exc))
            await self._write_status(platform, None, [cond], outcome)
            return

        ctx = RenderContext(name=name, namespace=namespace, spec=model.spec, reference_image=self.reference_image)
        owner = owner_reference(platform)
        desired = [with_hash(_owned(obj, owner)) for obj in render_platform(ctx)]
        obs = Observations(paused=meta.get("annotations", {}).get(PAUSE_ANNOTATION) == "paused")
        obs.route_desired = any(o["kind"] in ROUTE_KINDS for o in desired)

        if not obs.paused:
            await self._apply_all(desired, meta["uid"], obs, outcome)
            await self._prune(desired, meta["uid"], outcome)

        deployments = {
            o["metadata"]["name"]: self.cache.get("Deployment", namespace, o["metadata"]["name"])
            for o in desired
            if o["kind"] == "Deployment"
        }
        services = service_statuses(ctx.services, deployments)
        route = next((o for o in desired if o["kind"] in ROUTE_KINDS), None)
        if route is not None and obs.route_unavailable is None:
            obs.route = self.cache.get(route["kind"], namespace, route["metadata"]["name"])
        areas = [workloads_condition(services, obs), routes_condition(obs)]
        conditions = [ready_condition(areas), *areas]
        if obs.paused:
            conditions.append(
                ConditionState(
                    PAUSED, "True", "PausedByAnnotation", f"{PAUSE_ANNOTATION}: paused is set; no changes are applied"
                )
            )
        else:
            conditions.append(ConditionState(PAUSED, "False", "Reconciling", "changes are applied"))
        outcome.ready = conditions[0].status == "True"
        await self._write_status(platform, (model, generation, services), conditions, outcome)

    async def _apply_all(self, desired: list[dict[str, Any]], uid: str, obs: Observations, outcome: Outcome) -> None:
        todo = []
        for obj in desired:
            kind, namespace, name = key_of(obj)
            live = self.cache.get(kind, namespace, name)
            if live is not None and controller_uid(live) not in (None, uid):
                obs.conflicts.append(f"{kind}/{name}")
                continue
            if needs_apply(obj, live):
                todo.append(obj)
        results = await asyncio.gather(*(self._apply(obj) for obj in todo), return_exceptions=True)
        for obj, result in zip(todo, results, strict=True):
            label = f"{obj['kind']}/{obj['metadata']['name']}"
            if isinstance(result, ApiError):
                if obj["kind"] in ROUTE_KINDS and result.status == 404:
                    obs.route_unavailable = f"{obj['kind']} is not served by this cluster (is its CRD installed?)"
                    continue
                obs.apply_errors[label] = result.message
                outcome.errors.append(f"{label}: {result}")
                outcome.retry = True
            elif isinstance(result, BaseException):
                raise result
            else:
                outcome.writes += 1

    async def _apply(self, obj: dict[str, Any]) -> None:
        async with self._writes:
            await self.client.apply(obj)
        metrics.OBJECTS_APPLIED.labels(kind=obj["kind"]).inc()
        log.info("applied %s %s/%s", obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])

    async def _prune(self, desired: list[dict[str, Any]], uid: str, outcome: Outcome) -> None:
        wanted = {key_of(o) for o in desired}
        stale = [o for o in self.cache.owned_by(uid) if key_of(o) not in wanted]
        for obj in stale:
            kind, namespace, name = key_of(obj)
            try:
                async with self._writes:
                    await self.client.delete(kind_of(obj), namespace, name, uid=obj["metadata"].get("uid"))
            except ApiError as exc:
                outcome.errors.append(f"delete {kind}/{name}: {exc}")
                outcome.retry = True
                continue
            outcome.writes += 1
            metrics.OBJECTS_DELETED.labels(kind=kind).inc()
            log.info("deleted %s %s/%s: no longer desired", kind, namespace, name)

    async def _write_status(
        self,
        platform: dict[str, Any],
        parts: tuple[MicroservicePlatform, int, Any] | None,
        conditions: list[ConditionState],
        outcome: Outcome,
    ) -> None:
        meta = platform["metadata"]
        live_status = platform.get("status") or {}
        generation = meta.get("generation", 0)
        merged = merge_conditions(live_status.get("conditions"), conditions, generation=generation, now=self.now())
        if parts is None:
            status: dict[str, Any] = {"observedGeneration": generation, "conditions": merged}
        else:
            model, gen, services = parts
            status = build_status(model.spec, gen, services, merged)
        metrics.set_platform_ready(meta["namespace"], meta["name"], merged[0]["status"] == "True")
        if status == live_status:
            return
        try:
            await self.client.patch_status(PLATFORM_KIND, meta["namespace"], meta["name"], status)
        except ApiError as exc:
            if exc.status == 404:
                return  # deleted meanwhile
            outcome.errors.append(f"status: {exc}")
            outcome.retry = True
            return
        outcome.writes += 1
        for cond in transitions(live_status.get("conditions"), merged):
            if cond["type"] == READY:
                await self._event(platform, cond)

    async def _event(self, platform: dict[str, Any], cond: dict[str, Any]) -> None:
        meta = platform["metadata"]
        now = self.now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": PLATFORM_KIND.api_version,
                "kind": PLATFORM_KIND.kind,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": "Normal" if cond["status"] == "True" else "Warning",
            "reason": cond["reason"],
            "message": cond["message"][:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": "keelson-operator"},
            "reportingComponent": "keelson-operator",
        }
        try:
            await self.client.create(EVENT_KIND, meta["namespace"], event)
        except ApiError as exc:  # an event is best effort; never fail a reconcile over it
            log.warning("could not post event: %s", exc)


def _owned(obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "ownerReferences": [owner]}}


def _validation_summary(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
