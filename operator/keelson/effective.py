"""Resolve a platform spec into fully specified per-service settings.

Precedence, lowest first: Keelson's built-in defaults, the sizing model (when `dailyUsers` is
given), `spec.defaults`, the service's own fields. Renderers only ever see the result, so the
rules live in one place and status can report exactly what is in force.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes.utils import parse_quantity

from keelson.api.v1alpha1 import (
    Autoscaling,
    CircuitBreaker,
    EgressRule,
    EnvVar,
    MicroservicePlatformSpec,
    Resilience,
    Resources,
    Retry,
    Service,
    topic_name,
)
from keelson.sizing import SizingResult, size_for

DEFAULT_PORT = 8080
DEFAULT_REPLICAS = 2
BUILTIN_RESILIENCE = Resilience(
    timeoutSeconds=5,
    circuitBreaker=CircuitBreaker(consecutiveFailures=3, openSeconds=30),
    retry=Retry(backoffSeconds=[1, 2, 4, 8], maxRetries=3),
)
BUILTIN_AUTOSCALING = Autoscaling(enabled=True, minReplicas=2, maxReplicas=10, targetCPUUtilizationPercentage=70)
BUILTIN_RESOURCES = Resources(requests={"cpu": "100m", "memory": "128Mi"}, limits={"memory": "256Mi"})


@dataclass(frozen=True)
class EffectiveResilience:
    timeout_seconds: float
    breaker_failures: int
    breaker_open_seconds: int
    backoff_seconds: tuple[int, ...]
    max_retries: int


@dataclass(frozen=True)
class EffectiveAutoscaling:
    enabled: bool
    min_replicas: int
    max_replicas: int
    target_cpu: int


@dataclass(frozen=True)
class EffectiveService:
    name: str
    reference: str | None
    image: str | None
    port: int
    replicas: int
    autoscaling: EffectiveAutoscaling
    resources: Resources
    resilience: EffectiveResilience
    has_database: bool
    publishes: tuple[str, ...]  # full topic names
    subscribes: tuple[str, ...]  # full topic names
    calls: tuple[str, ...]
    callers: tuple[str, ...]  # services of the platform that call this one
    expose_path: str | None
    env: tuple[EnvVar, ...]
    egress: tuple[EgressRule, ...] = ()


def _merge_resilience(*layers: Resilience | None) -> Resilience:
    timeout: float | None = None
    failures: int | None = None
    open_seconds: int | None = None
    backoff: list[int] | None = None
    retries: int | None = None
    for layer in layers:
        if layer is None:
            continue
        timeout = layer.timeoutSeconds if layer.timeoutSeconds is not None else timeout
        if layer.circuitBreaker:
            cb = layer.circuitBreaker
            failures = cb.consecutiveFailures if cb.consecutiveFailures is not None else failures
            open_seconds = cb.openSeconds if cb.openSeconds is not None else open_seconds
        if layer.retry:
            backoff = list(layer.retry.backoffSeconds) if layer.retry.backoffSeconds is not None else backoff
            retries = layer.retry.maxRetries if layer.retry.maxRetries is not None else retries
    return Resilience(
        timeoutSeconds=timeout,
        circuitBreaker=CircuitBreaker(consecutiveFailures=failures, openSeconds=open_seconds),
        retry=Retry(backoffSeconds=backoff, maxRetries=retries),
    )


def _merge_autoscaling(*layers: Autoscaling | None) -> Autoscaling:
    """Later layers win per field. Where the bounds cross (`spec.defaults` sets maxReplicas 1 under
    Keelson's minReplicas 2), the bound set by the more specific layer wins and the other follows."""
    merged: dict[str, object] = {}
    level = {"minReplicas": -1, "maxReplicas": -1}
    for index, layer in enumerate(layers):
        if layer is None:
            continue
        fields = layer.model_dump(exclude_none=True)
        merged.update(fields)
        level.update({k: index for k in level if k in fields})
    low, high = merged.get("minReplicas"), merged.get("maxReplicas")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        if level["maxReplicas"] >= level["minReplicas"]:
            merged["minReplicas"] = high
        else:
            merged["maxReplicas"] = low
    return Autoscaling.model_validate(merged)


def _merge_resources(*layers: Resources | None) -> Resources:
    """Later layers win per key. Where a request ends up above a limit of another layer, the more
    specific layer's value wins and the other follows it (the API server refuses requests above
    limits, so the merged result must never have one; within one layer admission refuses it)."""
    requests: dict[str, tuple[int, str | int]] = {}
    limits: dict[str, tuple[int, str | int]] = {}
    for level, layer in enumerate(layers):
        if layer is None:
            continue
        requests.update({k: (level, v) for k, v in (layer.requests or {}).items()})
        limits.update({k: (level, v) for k, v in (layer.limits or {}).items()})
    for key in requests.keys() & limits.keys():
        (req_level, request), (lim_level, limit) = requests[key], limits[key]
        if parse_quantity(request) <= parse_quantity(limit):
            continue
        if req_level > lim_level:
            limits[key] = (req_level, request)
        else:
            requests[key] = (lim_level, limit)
    return Resources(
        requests={k: v for k, (_, v) in requests.items()} or None,
        limits={k: v for k, (_, v) in limits.items()} or None,
    )


def sizing(spec: MicroservicePlatformSpec) -> SizingResult | None:
    return size_for(spec.dailyUsers) if spec.dailyUsers else None


def default_autoscaling(spec: MicroservicePlatformSpec) -> Autoscaling:
    sized = sizing(spec)
    sized_layer = Autoscaling(minReplicas=sized.min_replicas, maxReplicas=sized.max_replicas) if sized else None
    return _merge_autoscaling(BUILTIN_AUTOSCALING, sized_layer, spec.defaults.autoscaling if spec.defaults else None)


def default_resilience(spec: MicroservicePlatformSpec) -> Resilience:
    return _merge_resilience(BUILTIN_RESILIENCE, spec.defaults.resilience if spec.defaults else None)


def default_resources(spec: MicroservicePlatformSpec) -> Resources:
    return _merge_resources(BUILTIN_RESOURCES, spec.defaults.resources if spec.defaults else None)


def _effective_resilience(layer: Resilience) -> EffectiveResilience:
    cb = layer.circuitBreaker or CircuitBreaker()
    retry = layer.retry or Retry()
    assert layer.timeoutSeconds is not None and cb.consecutiveFailures is not None
    assert cb.openSeconds is not None and retry.backoffSeconds is not None and retry.maxRetries is not None
    return EffectiveResilience(
        timeout_seconds=layer.timeoutSeconds,
        breaker_failures=cb.consecutiveFailures,
        breaker_open_seconds=cb.openSeconds,
        backoff_seconds=tuple(retry.backoffSeconds),
        max_retries=retry.maxRetries,
    )


def _effective_service(spec: MicroservicePlatformSpec, svc: Service, callers: tuple[str, ...]) -> EffectiveService:
    auto = _merge_autoscaling(default_autoscaling(spec), svc.autoscaling)
    assert auto.minReplicas is not None and auto.maxReplicas is not None
    # A service may lower maxReplicas below an inherited minReplicas: the bound it set wins
    # (_merge_autoscaling).
    min_replicas = auto.minReplicas
    return EffectiveService(
        name=svc.name,
        reference=svc.reference,
        image=svc.image,
        port=svc.port or DEFAULT_PORT,
        replicas=svc.replicas if svc.replicas is not None else DEFAULT_REPLICAS,
        autoscaling=EffectiveAutoscaling(
            enabled=auto.enabled is not False,
            min_replicas=min_replicas,
            max_replicas=auto.maxReplicas,
            target_cpu=auto.targetCPUUtilizationPercentage or 70,
        ),
        resources=_merge_resources(default_resources(spec), svc.resources),
        resilience=_effective_resilience(_merge_resilience(default_resilience(spec), svc.resilience)),
        has_database=svc.database is not None,
        publishes=tuple(topic_name(spec.domain, e) for e in svc.publishes or ()),
        subscribes=tuple(topic_name(spec.domain, e) for e in svc.subscribes or ()),
        calls=tuple(svc.calls or ()),
        callers=callers,
        expose_path=svc.expose.path if svc.expose else None,
        env=tuple(svc.env or ()),
        egress=tuple(svc.egress or ()),
    )


def effective_services(spec: MicroservicePlatformSpec) -> list[EffectiveService]:
    callers: dict[str, list[str]] = {s.name: [] for s in spec.services}
    for svc in spec.services:
        for callee in svc.calls or ():
            callers[callee].append(svc.name)
    return [_effective_service(spec, s, tuple(sorted(callers[s.name]))) for s in spec.services]
