"""One reconcile pass of one platform: render, apply what drifted, prune, report.

Level-based: it compares the desired objects with the watch caches every time, whatever woke it
(a spec change, a child's event, a resync), and writes only what differs. An unchanged, ready
platform therefore costs no write at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from keelson.api.components import ComponentDefinitionSpec
from keelson.api.status import ServiceStatus
from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.components.resolve import ComponentProblems, ResolvedComponent, resolve
from keelson.controller import metrics
from keelson.controller.areas import Area, AreaResult
from keelson.controller.cache import ChildCache, SyncMemo, controller_uid
from keelson.controller.components import component_statuses, invalid, team_component_problems, with_components
from keelson.controller.conditions import ConditionState, merge_conditions, transitions
from keelson.controller.drift import drifted_fields, with_hash
from keelson.controller.handover import HANDOVER_MANAGER, initial_replicas, replicas_handovers
from keelson.controller.loopguard import LoopGuard
from keelson.controller.status import (
    MONITORING_KINDS,
    PAUSED,
    READY,
    Observations,
    build_status,
    monitoring_condition,
    ready_condition,
    routes_condition,
    service_statuses,
    workloads_condition,
    write_loop_condition,
)
from keelson.controller.tenants import TenantStatusWriter, tenant_status
from keelson.kube.client import ApiError, KubeClient
from keelson.kube.resources import EVENT_KIND, PLATFORM_KIND, ObjectKey, key_of, kind_of
from keelson.render import RenderContext, render_platform
from keelson.render.cnpg import OUTLIVES_PLATFORM
from keelson.render.components import COMPONENT_LABEL
from keelson.render.context import TokenIssuer
from keelson.render.labels import NAME_LABEL
from keelson.tenancy import Attachment, Verdict, attach

log = logging.getLogger("keelson.reconciler")

PAUSE_ANNOTATION = "keelson.dev/reconcile"
# Held while an area must clean up outside Kubernetes before the platform may go (Delete policies).
FINALIZER = "keelson.dev/cleanup"
# Set to "true" by an admin to let a platform go even though its cleanup keeps failing.
RELEASE_ANNOTATION = "keelson.dev/release-finalizer"
ROUTE_KINDS = ("Ingress", "HTTPRoute")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Outcome:
    writes: int = 0
    ready: bool = False
    retry: bool = False  # a transient failure: try again with backoff
    errors: list[str] = field(default_factory=list)
    # Come back after this many seconds: some of our writes are not in the watch cache yet.
    requeue_after: float | None = None


@dataclass(frozen=True)
class StatusWrite:
    over: frozenset[str]  # versions from before the write, which the watch cache may still show
    made: str  # the version our write produced
    status: dict[str, Any]


def _component_input(component: ResolvedComponent) -> list[Any]:
    # A published version is immutable, but a definition can be deleted and published again.
    return [component.fullname, component.definition.model_dump(mode="json"), component.parameters]


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
        areas: Sequence[Area] = (),
        concurrency: int = 8,
        now: Callable[[], str] = _now,
        guard: LoopGuard | None = None,
        clock: Callable[[], float] = time.monotonic,
        notices: Callable[[], Sequence[ConditionState]] = tuple,
        definitions: Callable[[], Sequence[ComponentDefinitionSpec]] = tuple,
        platform_services: Callable[[tuple[str, str]], Sequence[dict[str, Any]]] = lambda _key: (),
        namespace_labels: Callable[[], Mapping[str, Mapping[str, str]]] = dict,
    ) -> None:
        self.client = client
        self.cache = cache
        self.reference_image = reference_image
        # The cluster's service-account issuer, kept current by the handlers (controller/issuer.py).
        self.token_issuer: TokenIssuer | None = None
        self.areas = tuple(areas)
        self.now = now
        # uid -> what our last status write did to the platform. The watch cache can lag our own
        # status write; a pass that starts before it catches up must compare against what we
        # wrote, or it writes the same status (and Event) again.
        self._written: dict[str, StatusWrite] = {}
        self._writes = asyncio.Semaphore(concurrency)
        self.guard = guard or LoopGuard()
        self.clock = clock
        # Conditions about the installation rather than the platform (crdcheck), outside Ready.
        self.notices = notices
        # The published ComponentDefinitions (the watch index, controller.components).
        self.definitions = definitions
        # The PlatformServices that name a platform (namespace, name), and the namespaces' labels
        # (the watch indexes): what spec.tenancy decides on (keelson.tenancy).
        self.platform_services = platform_services
        self.namespace_labels = namespace_labels
        self.tenants = TenantStatusWriter(client)
        self._sync = SyncMemo(clock=clock)
        # uid -> (digest of the rendering's inputs, the rendered children): see _rendered.
        self._renders: dict[str, tuple[str, RenderContext, list[dict[str, Any]]]] = {}
        # Platforms whose namespace is being deleted (the API server said so): they go with it,
        # and every write until then would only fight the namespace controller.
        self._terminating: set[str] = set()

    async def reconcile(self, platform: dict[str, Any]) -> Outcome:
        started = time.monotonic()
        outcome = Outcome()
        meta = platform["metadata"]
        written = self._written.get(meta.get("uid", ""))
        if written is not None and meta.get("resourceVersion") in written.over:
            # The platform as it is after our write, unless someone else wrote since (then the
            # next status write meets a 409 and the newer version's watch event queues a pass).
            platform = {**platform, "metadata": {**meta, "resourceVersion": written.made}, "status": written.status}
        elif written is not None:
            del self._written[meta.get("uid", "")]  # the cache has caught up: it shows our write or a later one
        try:
            await self._reconcile(platform, outcome)
        finally:
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
            if outcome.errors:
                metrics.RECONCILE_ERRORS.inc()
        return outcome

    async def _reconcile(self, platform: dict[str, Any], outcome: Outcome) -> None:
        meta = platform["metadata"]
        name, namespace, generation = meta["name"], meta["namespace"], meta.get("generation", 0)
        try:
            model = MicroservicePlatform.from_object(platform)
        except ValidationError as exc:
            if meta.get("deletionTimestamp"):
                await self._set_finalizer(platform, present=False, outcome=outcome)  # nothing to clean by
                return
            # Admission (CEL) should have refused it; report rather than guess.
            cond = ConditionState(READY, "False", "InvalidSpec", _validation_summary(exc))
            await self._write_status(platform, None, [cond], {}, outcome)
            return
        candidates = list(self.platform_services((namespace, name)))
        attachment: Attachment | None = None
        if candidates:
            published = list(self.definitions())
            attachment = attach(
                model.spec,
                (namespace, name),
                candidates,
                self.namespace_labels(),
                components=lambda service, where: team_component_problems(
                    service, where, platform=(namespace, name), spec=model.spec, published=published
                ),
            )
            model = model.model_copy(update={"spec": attachment.spec, "placements": dict(attachment.placements)})
        if meta.get("deletionTimestamp"):
            await self._finalize(platform, model, outcome)
            return  # children go with the platform through their owner references
        if meta.get("uid") in self._terminating:
            return  # its namespace is being deleted (see _apply_all); only the cleanup above still runs
        try:
            components = tuple(resolve(model.spec, self.definitions()))
        except ComponentProblems as exc:
            await self._write_status(platform, None, list(invalid(exc.problems)), {}, outcome)
            return

        paused = meta.get("annotations", {}).get(PAUSE_ANNOTATION) == "paused"
        live_status = platform.get("status") or {}
        if paused and _previous_condition(live_status, PAUSED).status == "True":
            # The one write a pause costs is the status that says so (below). After it, nothing:
            # not even a status following the children that others edit; it is resumed on unpause.
            metrics.set_platform_ready(namespace, name, _previous_condition(live_status, READY).status == "True")
            return
        area_conditions: list[ConditionState] = []
        fragments: dict[str, Any] = {}
        pod_annotations: dict[str, dict[str, str]] = {}
        area_objects: list[dict[str, Any]] = []
        if paused:
            # Nothing is touched; what the areas last reported still stands.
            for area in self.areas:
                area_conditions.append(_previous_condition(live_status, area.condition_type))
                if area.status_key in live_status:
                    fragments[area.status_key] = live_status[area.status_key]
        else:
            await self._set_finalizer(
                platform, present=any(a.needs_cleanup(model) for a in self.areas), outcome=outcome
            )
            for result in await self._run_areas(platform, model):
                area_conditions.append(result.condition)
                fragments.update(result.status)
                area_objects.extend(result.objects)
                for service, annotations in result.pod_annotations.items():
                    pod_annotations.setdefault(service, {}).update(annotations)
                outcome.errors.extend(result.errors)
                outcome.retry |= result.retry
                for event in result.events:
                    await self._post_event(platform, event.type, event.reason, event.message)

        ctx = RenderContext(
            name=name,
            namespace=namespace,
            spec=model.spec,
            reference_image=self.reference_image,
            pod_annotations=pod_annotations,
            token_issuer=self.token_issuer,
            components=components,
            placements=model.placements,
        )
        try:
            ctx, rendered = self._rendered(platform, ctx)
        except ComponentProblems as exc:
            await self._write_status(platform, None, list(invalid(exc.problems)), {}, outcome)
            return
        owner_of = _owners(platform, ctx)
        desired = [*rendered, *(with_hash(_owned(obj, owner_of(obj))) for obj in area_objects)]
        obs = Observations(paused=paused)
        obs.route_desired = any(o["kind"] in ROUTE_KINDS for o in desired)

        if not paused:
            held = await self._hand_over_replicas(desired, meta["uid"], outcome)
            kept = [o for o in desired if key_of(o) not in held]
            starts = initial_replicas(kept, self.cache)
            await self._apply_all(kept, meta["uid"], generation, obs, outcome)
            await self._start_at_minimum(starts, outcome)
            await self._prune(desired, _prunable(meta["uid"], candidates, live_status), outcome)
            # The Event is the Ready transition's (reason WriteLoop), posted with the status.
            for label, fields in obs.new_write_loops.items():
                log.warning("%s/%s: stopped writing %s, a write loop on %s", namespace, name, label, ", ".join(fields))
                metrics.WRITE_LOOPS.labels(kind=label.split("/", 1)[0]).inc()

        deployments = {
            o["metadata"]["name"]: self.cache.get("Deployment", o["metadata"]["namespace"], o["metadata"]["name"])
            for o in desired
            if o["kind"] == "Deployment"
        }
        every_service = service_statuses(ctx.services, deployments)
        # The platform's status and Ready are about its own services; an attached service's
        # readiness is its PlatformService's (a team's broken image does not fail the platform).
        services = [s for s in every_service if s.name not in ctx.placements]
        component_conditions: list[ConditionState] = []
        own_components = [c for c in ctx.components if c.service not in ctx.placements]
        if own_components:
            by_service, components_ready = component_statuses(own_components, desired, self.cache)
            services = with_components(services, by_service)
            component_conditions.append(components_ready)
        team_components = [c for c in ctx.components if c.service in ctx.placements]
        if team_components:  # their readiness is their PlatformService's (tenants.tenant_conditions)
            every_service = with_components(every_service, component_statuses(team_components, desired, self.cache)[0])
        route = next((o for o in desired if o["kind"] in ROUTE_KINDS), None)
        if route is not None and obs.route_unavailable is None:
            obs.route = self.cache.get(route["kind"], namespace, route["metadata"]["name"])
        for obj in desired:
            if obj["kind"] in MONITORING_KINDS:
                label = f"{obj['kind']}/{obj['metadata']['name']}"
                obs.monitoring_desired.append(label)
                if self.cache.get(obj["kind"], namespace, obj["metadata"]["name"]) is not None:
                    obs.monitoring_live.append(label)
        areas = [workloads_condition(services, obs), routes_condition(obs), *component_conditions, *area_conditions]
        # MonitoringReady is reported but does not gate Ready (see status.monitoring_condition).
        # A write loop outranks every other reason: it is the operator misbehaving, not the platform.
        ready = write_loop_condition(obs) if obs.write_loops else ready_condition(areas)
        conditions = [ready, *areas, monitoring_condition(obs), *self.notices()]
        if paused:
            conditions.append(
                ConditionState(
                    PAUSED, "True", "PausedByAnnotation", f"{PAUSE_ANNOTATION}: paused is set; no changes are applied"
                )
            )
        else:
            conditions.append(ConditionState(PAUSED, "False", "Reconciling", "changes are applied"))
        outcome.ready = conditions[0].status == "True"
        if attachment is not None:
            fragments["attached"] = _attached_status(attachment)
            if not paused:
                await self._write_tenants(
                    platform, ctx, attachment, candidates=candidates, services=every_service, outcome=outcome
                )
        await self._write_status(platform, (model, generation, services), conditions, fragments, outcome)

    async def _write_tenants(
        self,
        platform: dict[str, Any],
        ctx: RenderContext,
        attachment: Attachment,
        *,
        candidates: Sequence[dict[str, Any]],
        services: Sequence[ServiceStatus],
        outcome: Outcome,
    ) -> None:
        meta = platform["metadata"]
        by_uid = {str((c.get("metadata") or {}).get("uid", "")): c for c in candidates}
        by_name = {s.name: s for s in services}
        for verdict in attachment.verdicts:
            obj = by_uid.get(verdict.uid)
            if obj is None:
                continue
            service = by_name.get(verdict.service or "") if verdict.accepted else None
            url = ctx.service_url(verdict.service) if verdict.accepted and verdict.service else None
            await self._write_tenant(
                obj, verdict, outcome, platform=(meta["namespace"], meta["name"]), service=service, url=url
            )

    async def _write_tenant(
        self,
        obj: dict[str, Any],
        verdict: Verdict,
        outcome: Outcome,
        *,
        platform: tuple[str, str] | None,
        service: ServiceStatus | None = None,
        url: str | None = None,
    ) -> None:
        status = tenant_status(
            verdict, self.tenants.live_status(obj), platform=platform, service=service, url=url, now=self.now()
        )
        try:
            if await self.tenants.write(obj, status):
                outcome.writes += 1
        except ApiError as exc:
            outcome.errors.append(f"PlatformService {verdict.namespace}/{verdict.name} status: {exc}")
            outcome.retry = True

    async def orphaned(self, key: tuple[str, str], candidates: Sequence[dict[str, Any]]) -> Outcome:
        """PlatformServices that name a platform that does not exist (any more): refused, and
        nothing of theirs left running (their objects are pruned)."""
        outcome = Outcome()
        for obj in candidates:
            meta = obj.get("metadata") or {}
            verdict = Verdict(
                str(meta.get("namespace", "")),
                str(meta.get("name", "")),
                str(meta.get("uid", "")),
                int(meta.get("generation") or 0),
                False,
                "UnknownPlatform",
                f"MicroservicePlatform {key[0]}/{key[1]} does not exist",
            )
            await self._write_tenant(obj, verdict, outcome, platform=None)
        owners = [str((c.get("metadata") or {}).get("uid", "")) for c in candidates]
        await self._prune([], [o for o in owners if o], outcome)
        return outcome

    async def report_retained(self, platform: dict[str, Any]) -> None:
        """After a platform is deleted: an Event naming the data that was kept (Retain policies).
        There is no finalizer for Retain, so a deletion never waits on a broker or a server; the
        last status is what tells where the data lives."""
        self._written.pop(platform["metadata"].get("uid", ""), None)
        self._terminating.discard(platform["metadata"].get("uid", ""))
        status = platform.get("status") or {}
        spec = platform.get("spec") or {}
        kept = []
        if (spec.get("databases") or {}).get("deletionPolicy", "Retain") == "Retain":
            names = [d["database"] for d in status.get("databases") or [] if d.get("database")]
            where = _previous_condition(status, "DatabasesReady").message
            if names:
                kept.append(f"databases {', '.join(names)} ({where})")
        if (spec.get("kafka") or {}).get("deletionPolicy", "Retain") == "Retain":
            topics = [t["name"] for t in status.get("topics") or [] if t.get("role") != "external" and t.get("exists")]
            if topics:
                kept.append(f"{len(topics)} Kafka topics with their data on {spec['kafka'].get('bootstrapServers')}")
        if kept:
            await self._post_event(platform, "Normal", "Retained", "deletionPolicy Retain kept " + "; ".join(kept))

    async def _run_areas(self, platform: dict[str, Any], model: MicroservicePlatform) -> list[AreaResult]:
        results = await asyncio.gather(*(a.reconcile(platform, model) for a in self.areas), return_exceptions=True)
        out = []
        for area, result in zip(self.areas, results, strict=True):
            if isinstance(result, AreaResult):
                out.append(result)
                continue
            if not isinstance(result, Exception):
                raise result
            # An area's bug must not take the workloads down with it: report it and retry.
            log.error("area %s failed", area.condition_type, exc_info=result)
            out.append(
                AreaResult(
                    condition=ConditionState(area.condition_type, "False", "InternalError", f"{result!s}"[:1024]),
                    retry=True,
                    errors=[f"{area.condition_type}: {result}"],
                )
            )
        return out

    async def _finalize(self, platform: dict[str, Any], model: MicroservicePlatform, outcome: Outcome) -> None:
        meta = platform["metadata"]
        if FINALIZER not in (meta.get("finalizers") or []):
            return
        if meta.get("annotations", {}).get(RELEASE_ANNOTATION) == "true":
            log.warning("%s/%s: finalizer released by annotation; cleanup skipped", meta["namespace"], meta["name"])
            await self._set_finalizer(platform, present=False, outcome=outcome)
            return
        done = True
        conditions: list[ConditionState] = []
        fragments: dict[str, Any] = {}
        for area in self.areas:
            if not area.needs_cleanup(model):
                continue
            result = await area.cleanup(platform, model)
            done &= result.done
            conditions.append(result.condition)
            fragments.update(result.status)
            outcome.errors.extend(result.errors)
            for event in result.events:  # e.g. what was dropped: the platform's last word
                await self._post_event(platform, event.type, event.reason, event.message)
        if done:
            await self._set_finalizer(platform, present=False, outcome=outcome)
            return
        outcome.retry = True
        summary = ConditionState(
            READY,
            "False",
            "CleanupFailed",
            f"deletion waits for cleanup; set annotation {RELEASE_ANNOTATION}=true to skip it",
        )
        await self._write_status(platform, None, [summary, *conditions], fragments, outcome)

    async def _set_finalizer(self, platform: dict[str, Any], *, present: bool, outcome: Outcome) -> None:
        meta = platform["metadata"]
        current = list(meta.get("finalizers") or [])
        if (FINALIZER in current) == present:
            return
        wanted = [*current, FINALIZER] if present else [f for f in current if f != FINALIZER]
        try:
            # resourceVersion makes this a compare-and-swap: others' finalizers are never lost.
            await self.client.patch_merge(
                PLATFORM_KIND,
                meta["namespace"],
                meta["name"],
                {"metadata": {"finalizers": wanted or None, "resourceVersion": meta["resourceVersion"]}},
            )
        except ApiError as exc:
            if exc.status != 404:
                outcome.errors.append(f"finalizer: {exc}")
                outcome.retry = True
            return
        outcome.writes += 1

    async def _apply_all(
        self, desired: list[dict[str, Any]], uid: str, generation: int, obs: Observations, outcome: Outcome
    ) -> None:
        todo = []
        unseen: list[ObjectKey] = []
        now = self.clock()
        self.guard.expire(now)
        for obj in desired:
            key = key_of(obj)
            kind, namespace, name = key
            live = self.cache.get(kind, namespace, name)
            owner = controller_uid(obj) or uid  # an attached service's objects are its PlatformService's
            if live is not None and controller_uid(live) not in (None, owner):
                if kind in MONITORING_KINDS:
                    obs.monitoring_errors[f"{kind}/{name}"] = "another owner controls it"
                else:
                    obs.conflicts.append(f"{kind}/{name}")
                continue
            if live is not None and live.get("metadata", {}).get("deletionTimestamp"):
                continue  # on its way out (a namespace deletion, a foreground delete): re-made once gone
            if self._sync.awaiting(obj, live):
                unseen.append(key)  # our write of it is not in the cache yet
                continue
            if not self._sync.needs_apply(obj, live):
                self.guard.settled(key)
                continue
            trip = self.guard.check(key, generation, now, drifted_fields(obj, live))
            if trip is not None:
                obs.write_loops[f"{kind}/{name}"] = trip.fields
                if not trip.reported:
                    trip.reported = True
                    obs.new_write_loops[f"{kind}/{name}"] = trip.fields
                continue
            todo.append((obj, live))
        results = await asyncio.gather(*(self._apply(obj) for obj, _ in todo), return_exceptions=True)
        for (obj, live), result in zip(todo, results, strict=True):
            label = f"{obj['kind']}/{obj['metadata']['name']}"
            if isinstance(result, ApiError):
                if obj["kind"] in ROUTE_KINDS and result.status == 404:
                    obs.route_unavailable = f"{obj['kind']} is not served by this cluster (is its CRD installed?)"
                    continue
                if obj["kind"] in MONITORING_KINDS:
                    if result.status == 404:  # no CRD: reported, not retried (the resync tries again)
                        obs.monitoring_unavailable.append(obj["kind"])
                        continue
                    obs.monitoring_errors[label] = result.message
                else:
                    obs.apply_errors[label] = result.message
                outcome.errors.append(f"{label}: {result}")
                # A namespace being deleted refuses new objects, and the platform goes with it:
                # retrying would only hammer the API server until it is gone (seen: ~3,000 refusals).
                if namespace_terminating(result):
                    self._terminating.add(uid)
                else:
                    outcome.retry = True
            elif isinstance(result, BaseException):
                raise result
            else:
                outcome.writes += 1
                self.guard.record(key_of(obj), generation, now)
                self._sync.applied(obj, live, result)
        # Writes the watch has not shown yet were skipped above; if one was lost (deleted before
        # the cache ever showed it), the pass when its expectation lapses writes it again. (This
        # pass's own writes need no such pass: their watch events bring the next one.)
        wait = self._sync.pending(unseen)
        if wait is not None:
            outcome.requeue_after = wait if outcome.requeue_after is None else max(outcome.requeue_after, wait)

    async def _apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        async with self._writes:
            made = await self.client.apply(obj)
        metrics.OBJECTS_APPLIED.labels(kind=obj["kind"]).inc()
        log.info("applied %s %s/%s", obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        return made

    async def _prune(self, desired: list[dict[str, Any]], owners: Sequence[str], outcome: Outcome) -> None:
        """Delete what the owners (the platform, and the PlatformServices that name it or did)
        control and is no longer desired."""
        wanted = {key_of(o) for o in desired}
        stale = [o for uid in owners for o in self.cache.owned_by(uid) if key_of(o) not in wanted]
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

    async def _start_at_minimum(self, bodies: list[dict[str, Any]], outcome: Outcome) -> None:
        """New autoscaled Deployments start at their HPA's minimum (handover.initial_replicas)."""
        for body in bodies:
            try:
                async with self._writes:
                    await self.client.apply(body, field_manager=HANDOVER_MANAGER)
            except ApiError as exc:
                # Not fatal: the HPA raises it to its minimum at its next sync.
                log.warning("could not start Deployment %s/%s at its minimum: %s", *key_of(body)[1:], exc)
                continue
            outcome.writes += 1

    def _rendered(self, platform: dict[str, Any], ctx: RenderContext) -> tuple[RenderContext, list[dict[str, Any]]]:
        """The rendered children, owned and hashed, and the context they came from (with its
        effective services resolved); the same ones while the inputs are the same.

        Rendering and hashing every child is most of an idle pass's CPU (a resync of 40 platforms
        of 25 services renders 7,000 objects), and its inputs rarely change: the spec, the
        platform's identity, the reference image and the areas' pod annotations. The list is
        shared between passes, so nothing downstream may mutate its objects (none does: apply
        bodies are new dicts)."""
        meta = platform["metadata"]
        inputs = [
            meta.get("uid"),
            meta["name"],
            meta["namespace"],
            platform.get("apiVersion"),
            platform.get("spec"),
            self.reference_image,
            ctx.pod_annotations,
            ctx.token_issuer,
            [_component_input(c) for c in ctx.components],
            # Attached services: their spec (merged into ctx.spec) and where they live.
            [[p.model_dump(), ctx.spec.service(n).model_dump(mode="json")] for n, p in sorted(ctx.placements.items())],
        ]
        digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
        uid = str(meta.get("uid", ""))
        remembered = self._renders.get(uid)
        if remembered is not None and remembered[0] == digest:
            return remembered[1], remembered[2]
        owner_of = _owners(platform, ctx)
        rendered = [with_hash(_owned(obj, owner_of(obj))) for obj in render_platform(ctx)]
        if len(self._renders) >= 10_000:  # deleted platforms' entries: start afresh
            self._renders.clear()
        self._renders[uid] = (digest, ctx, rendered)
        return ctx, rendered

    async def _hand_over_replicas(self, desired: list[dict[str, Any]], uid: str, outcome: Outcome) -> set[ObjectKey]:
        """Keep the replicas of Deployments whose autoscaling is being switched on (handover.py);
        returns the Deployments not to apply in this pass, as their hand-over failed."""
        held: set[ObjectKey] = set()
        for body in replicas_handovers(desired, self.cache, uid):
            try:
                async with self._writes:
                    await self.client.apply(body, field_manager=HANDOVER_MANAGER)
            except ApiError as exc:
                # Applied without its hand-over, the Deployment would fall to 1 replica: wait.
                held.add(key_of(body))
                outcome.errors.append(f"Deployment/{body['metadata']['name']}: replicas hand-over: {exc}")
                outcome.retry = True
                continue
            outcome.writes += 1
            log.info("handed replicas of Deployment %s/%s over to its HPA", *key_of(body)[1:])
        return held

    async def _write_status(
        self,
        platform: dict[str, Any],
        parts: tuple[MicroservicePlatform, int, Any] | None,
        conditions: list[ConditionState],
        fragments: dict[str, Any],
        outcome: Outcome,
    ) -> None:
        meta = platform["metadata"]
        live_status = platform.get("status") or {}
        generation = meta.get("generation", 0)
        merged = merge_conditions(live_status.get("conditions"), conditions, generation=generation, now=self.now())
        if parts is None:
            status: dict[str, Any] = {**live_status, "observedGeneration": generation, "conditions": merged}
        else:
            model, gen, services = parts
            status = build_status(model.spec, gen, services, merged)
        status.update(fragments)
        metrics.set_platform_ready(meta["namespace"], meta["name"], merged[0]["status"] == "True")
        if status == live_status:
            return
        rv = meta.get("resourceVersion", "")
        try:
            made = await self.client.replace_status(
                PLATFORM_KIND, meta["namespace"], meta["name"], status, resource_version=rv
            )
        except ApiError as exc:
            if exc.status == 404:
                return  # deleted meanwhile
            if exc.status == 409:
                # Our view is stale: a newer version exists, and its watch event queues another
                # pass over it. Nothing failed; nothing to retry with backoff.
                log.debug("%s/%s: status not written over stale version %s", meta["namespace"], meta["name"], rv)
                return
            outcome.errors.append(f"status: {exc}")
            outcome.retry = True
            return
        uid = meta.get("uid", "")
        previous = self._written.get(uid)
        # Written over our own previous write: the cache may still show any version of the chain.
        over = previous.over | {rv} if previous is not None and previous.made == rv else frozenset({rv})
        self._written[uid] = StatusWrite(over=over, made=made, status=status)
        outcome.writes += 1
        for cond in transitions(live_status.get("conditions"), merged):
            if cond["type"] == READY:
                kind = "Normal" if cond["status"] == "True" else "Warning"
                await self._post_event(platform, kind, cond["reason"], cond["message"])

    async def _post_event(self, platform: dict[str, Any], type_: str, reason: str, message: str) -> None:
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
            "type": type_,
            "reason": reason,
            "message": message[:1024],
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


def namespace_terminating(error: ApiError) -> bool:
    return error.status == 403 and "because it is being terminated" in error.message


def _previous_condition(status: dict[str, Any], ctype: str) -> ConditionState:
    for cond in status.get("conditions") or []:
        if cond.get("type") == ctype:
            return ConditionState(ctype, cond["status"], cond["reason"], cond["message"])
    return ConditionState(ctype, "Unknown", "Paused", "not reconciled while paused")


def _owned(obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    # An object that holds data the platform's deletion must not take with it (a retained
    # database Cluster) gets no owner reference: garbage collection never deletes it, and
    # pruning, which only considers owned objects, never does either.
    if obj["metadata"].get("annotations", {}).get(OUTLIVES_PLATFORM) == "true":
        return obj
    return {**obj, "metadata": {**obj["metadata"], "ownerReferences": [owner]}}


def _validation_summary(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _owners(platform: dict[str, Any], ctx: RenderContext) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Who owns a desired object: the platform, or for an object in an attached service's
    namespace the PlatformService that attached it (an owner must be in the object's namespace),
    so that deleting the PlatformService takes its objects with it."""
    platform_owner = owner_reference(platform)
    by_component = {c.fullname: c.service for c in ctx.components}

    def owner_of(obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        if meta.get("namespace", ctx.namespace) == ctx.namespace:
            return platform_owner
        labels = meta.get("labels") or {}
        service = by_component.get(labels.get(COMPONENT_LABEL, ""), labels.get(NAME_LABEL, ""))
        placement = ctx.placements[service]
        return placement.owner_reference

    return owner_of


def _prunable(uid: str, candidates: Sequence[dict[str, Any]], status: dict[str, Any]) -> list[str]:
    """The owners whose objects a pass may prune: the platform, every PlatformService that names
    it (a refused one keeps nothing), and those the last status listed (one that since names
    another platform, or none)."""
    owners = [uid]
    for entry in [*(c.get("metadata") or {} for c in candidates), *(status.get("attached") or [])]:
        other = str(entry.get("uid") or "")
        if other and other not in owners:
            owners.append(other)
    return owners


def _attached_status(attachment: Attachment) -> list[dict[str, Any]]:
    return [
        {
            "namespace": v.namespace,
            "name": v.name,
            "uid": v.uid,
            **({"service": v.service} if v.service else {}),
            "accepted": v.accepted,
            "reason": v.reason,
        }
        for v in sorted(attachment.verdicts, key=lambda v: (v.namespace, v.name))
    ]
