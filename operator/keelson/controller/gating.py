"""Running an area's external work only when its inputs changed, or when the resync is due.

A platform is reconciled on every event of every child, and while 200 Deployments roll out that
is hundreds of passes in a minute, each of which would open a PostgreSQL connection and send
Kafka admin requests that can only find what the previous one found. An area's result depends on
the platform (its spec, annotations, the status it wrote itself) and on a few children it reads
from the watch cache; `GatedArea` fingerprints exactly those and reuses the last result while the
fingerprint holds. Inputs that are not watched (the admin Secret, the server's own state, the
brokers) are re-read when the last run is older than `max_age`: the resync's level-based safety
net, as before, for drift made behind the operator's back.

A result that asked for a retry is never reused, and neither are its Events (posted once, when
the work ran).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from keelson import kafkausers
from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.controller import metrics
from keelson.controller.areas import Area, AreaResult
from keelson.controller.cache import ChildCache
from keelson.databases.naming import secret_name
from keelson.topics import plan_topics

# What an area reads, as (kind, name) of children in the platform's namespace, besides the platform.
Watched = Callable[[dict[str, Any], MicroservicePlatform, AreaResult | None], Iterable[tuple[str, str]]]


@dataclass
class _Last:
    fingerprint: str
    result: AreaResult
    ran_at: float


def _platform_inputs(platform: dict[str, Any], model: MicroservicePlatform, status: Any) -> dict[str, Any]:
    meta = platform["metadata"]
    return {
        "uid": meta.get("uid"),
        "generation": meta.get("generation"),
        # Rotation requests and other keelson.dev/ switches live here; others' annotations do not
        # matter to an area, and tools that annotate (Argo CD) must not wake one up.
        "annotations": {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith("keelson.dev/")},
        "deleting": bool(meta.get("deletionTimestamp")),
        "spec": platform.get("spec"),
        # Services PlatformServices attached: merged into the model's spec, not the platform's.
        "attached": [
            [p.model_dump(), model.spec.service(name).model_dump(mode="json")]
            for name, p in sorted(model.placements.items())
        ],
        # The area's own memory (databases kept under Retain, topics no longer declared).
        "status": status,
    }


class GatedArea:
    """An Area that reuses its last result while its inputs are unchanged and it is fresh."""

    def __init__(
        self,
        area: Area,
        cache: ChildCache,
        *,
        watched: Watched,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.area = area
        self.cache = cache
        self.watched = watched
        self.max_age = max_age
        self.clock = clock
        self.condition_type = area.condition_type
        self.status_key = area.status_key
        self._last: dict[str, _Last] = {}  # by platform uid

    def needs_cleanup(self, model: MicroservicePlatform) -> bool:
        return self.area.needs_cleanup(model)

    def forget(self, uid: str) -> None:
        self._last.pop(uid, None)

    def fingerprint(
        self, platform: dict[str, Any], model: MicroservicePlatform, basis: AreaResult | None, status: Any
    ) -> str:
        """Of the platform's inputs with the area's status fragment `status`, and of the children
        the area reads, among them the objects of the result `basis`."""
        namespace = platform["metadata"]["namespace"]
        children = []
        for kind, name in sorted(set(self.watched(platform, model, basis))):
            live = self.cache.get(kind, namespace, name)
            meta = (live or {}).get("metadata", {})
            children.append([kind, name, meta.get("uid"), meta.get("resourceVersion")])
        inputs = {"platform": _platform_inputs(platform, model, status), "children": children}
        return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()

    async def reconcile(self, platform: dict[str, Any], model: MicroservicePlatform) -> AreaResult:
        uid = str(platform["metadata"].get("uid", ""))
        last = self._last.get(uid)
        status = (platform.get("status") or {}).get(self.status_key)
        fingerprint = self.fingerprint(platform, model, last.result if last else None, status)
        now = self.clock()
        if (
            last is not None
            and last.fingerprint == fingerprint
            and not last.result.retry
            and now - last.ran_at < self.max_age
        ):
            metrics.AREA_PASSES_SKIPPED.labels(area=self.condition_type).inc()
            return replace(last.result, events=[])
        metrics.AREA_PASSES.labels(area=self.condition_type).inc()
        result = await self.area.reconcile(platform, model)
        # The result's objects are inputs from now on (a Secret deleted by hand wakes the area),
        # and its status fragment is what the next pass will find written (which wakes nothing).
        written = self.fingerprint(platform, model, result, result.status.get(self.status_key))
        self._last[uid] = _Last(written, result, now)
        return result

    async def cleanup(self, platform: dict[str, Any], model: MicroservicePlatform) -> AreaResult:
        return await self.area.cleanup(platform, model)


def database_children(
    platform: dict[str, Any], model: MicroservicePlatform, last: AreaResult | None
) -> Iterable[tuple[str, str]]:
    """What the databases area reads from the cache: the objects it returned last time (Secrets,
    egress policies, CloudNativePG objects and their status) and every Secret of a service's
    database, wanted or left over."""
    name = platform["metadata"]["name"]
    for obj in last.objects if last else []:
        yield obj["kind"], obj["metadata"]["name"]
    for service in model.spec.services:
        yield "Secret", secret_name(name, service.name)


def topic_children(
    platform: dict[str, Any], model: MicroservicePlatform, last: AreaResult | None
) -> Iterable[tuple[str, str]]:
    """Provider strimzi reports on the KafkaTopic objects; the others read no child."""
    kafka = model.spec.kafka
    if kafka is not None and kafka.provider == "strimzi":
        for topic in plan_topics(model.spec):
            yield "KafkaTopic", topic.name


def kafka_user_children(
    platform: dict[str, Any], model: MicroservicePlatform, last: AreaResult | None
) -> Iterable[tuple[str, str]]:
    """What the Kafka users area reads from the cache: each service's credentials Secret, and with
    provider strimzi its KafkaUser (and that one's status)."""
    name = platform["metadata"]["name"]
    strimzi = model.spec.kafka is not None and model.spec.kafka.provider == "strimzi"
    for obj in last.objects if last else []:
        yield obj["kind"], obj["metadata"]["name"]
    for service in model.spec.services:
        yield "Secret", kafkausers.secret_name(name, service.name)
        if strimzi:
            yield "KafkaUser", kafkausers.kafka_user_name(name, service.name)
