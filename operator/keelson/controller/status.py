"""Computing a platform's status from what the caches show. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keelson.api.status import Condition, EffectiveDefaults, MicroservicePlatformStatus, ServiceStatus, Sizing
from keelson.api.v1alpha1 import MicroservicePlatformSpec
from keelson.controller.conditions import ConditionState
from keelson.controller.readiness import deployment_readiness
from keelson.effective import EffectiveService, default_autoscaling, default_resilience, default_resources, sizing

READY = "Ready"
WORKLOADS_READY = "WorkloadsReady"
ROUTES_READY = "RoutesReady"
MONITORING_READY = "MonitoringReady"
PAUSED = "Paused"
# Optional third-party kinds that only observe the platform: their state has its own condition,
# which does not gate Ready (see monitoring_condition).
MONITORING_KINDS = ("ServiceMonitor", "PrometheusRule")


@dataclass
class Observations:
    """What a reconcile pass saw and did, for the status to report."""

    apply_errors: dict[str, str] = field(default_factory=dict)  # object -> error
    conflicts: list[str] = field(default_factory=list)  # objects controlled by someone else
    route: dict[str, Any] | None = None  # the live route, when one is desired
    route_desired: bool = False
    route_unavailable: str | None = None  # why the route's kind cannot be written
    monitoring_desired: list[str] = field(default_factory=list)  # "Kind/name" of desired monitoring objects
    monitoring_live: list[str] = field(default_factory=list)  # those the watch cache shows
    monitoring_unavailable: list[str] = field(default_factory=list)  # kinds the API server does not serve
    monitoring_errors: dict[str, str] = field(default_factory=dict)  # object -> error
    paused: bool = False
    write_loops: dict[str, list[str]] = field(default_factory=dict)  # object -> fields that keep differing
    new_write_loops: dict[str, list[str]] = field(default_factory=dict)  # those tripped in this pass


def _summarise(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def apply_failed(condition: str, errors: dict[str, str]) -> ConditionState:
    """An area whose objects the API server refused: how many, and the first one's reason."""
    first = next(iter(errors.items()))
    return ConditionState(
        condition, "False", "ApplyFailed", f"{len(errors)} object(s) could not be applied; {first[0]}: {first[1]}"
    )


def workloads_condition(services: list[ServiceStatus], obs: Observations) -> ConditionState:
    if obs.conflicts:
        return ConditionState(
            WORKLOADS_READY,
            "False",
            "NameConflict",
            f"objects exist that another owner controls: {_summarise(obs.conflicts)}; rename the service "
            "or remove them",
        )
    if obs.apply_errors:
        return apply_failed(WORKLOADS_READY, obs.apply_errors)
    waiting = [f"{s.name} ({s.readyReplicas}/{s.desiredReplicas} ready)" for s in services if not s.ready]
    if waiting:
        return ConditionState(WORKLOADS_READY, "False", "Progressing", f"waiting for {_summarise(waiting)}")
    return ConditionState(WORKLOADS_READY, "True", "AllServicesReady", f"{len(services)} services ready")


def routes_condition(obs: Observations) -> ConditionState:
    if not obs.route_desired:
        return ConditionState(ROUTES_READY, "True", "NoPublicRoute", "no gateway service is configured")
    if obs.route_unavailable:
        return ConditionState(ROUTES_READY, "False", "RouteKindUnavailable", obs.route_unavailable)
    if obs.route is None:
        return ConditionState(ROUTES_READY, "False", "RoutePending", "the public route is not applied yet")
    kind, name = obs.route["kind"], obs.route["metadata"]["name"]
    for parent in obs.route.get("status", {}).get("parents", []) or []:
        for cond in parent.get("conditions", []) or []:
            if cond.get("type") == "Accepted" and cond.get("status") == "False":
                return ConditionState(
                    ROUTES_READY, "False", "RouteNotAccepted", f"{kind} {name}: {cond.get('message', '')}"
                )
    return ConditionState(ROUTES_READY, "True", "RouteApplied", f"{kind} {name} routes to the gateway")


def monitoring_condition(obs: Observations) -> ConditionState:
    """The Prometheus Operator objects. Reported truthfully, but outside Ready: monitoring observes
    the platform, it does not make it serve, and a cluster without the Prometheus Operator's CRDs
    must not hold up `kubectl wait --for=condition=Ready` or a GitOps health check."""
    if not obs.monitoring_desired:
        return ConditionState(
            MONITORING_READY, "True", "NotRequested", "spec.observability.metrics requests no monitoring objects"
        )
    if obs.monitoring_unavailable:
        kinds = ", ".join(obs.monitoring_unavailable)
        return ConditionState(
            MONITORING_READY,
            "False",
            "MonitoringKindUnavailable",
            f"{kinds} (monitoring.coreos.com/v1) not served by this cluster: install the Prometheus Operator's "
            "CRDs; the services still serve /metrics",
        )
    if obs.monitoring_errors:
        return apply_failed(MONITORING_READY, obs.monitoring_errors)
    pending = [o for o in obs.monitoring_desired if o not in obs.monitoring_live]
    if pending:
        return ConditionState(MONITORING_READY, "False", "MonitoringPending", f"not applied yet: {_summarise(pending)}")
    return ConditionState(MONITORING_READY, "True", "MonitoringApplied", f"{', '.join(obs.monitoring_desired)} applied")


def write_loop_condition(obs: Observations) -> ConditionState:
    """Ready=False while the write-loop guard holds an object back (see controller.loopguard)."""
    label, fields = next(iter(obs.write_loops.items()))
    more = f" (and {len(obs.write_loops) - 1} more objects)" if len(obs.write_loops) > 1 else ""
    return ConditionState(
        READY,
        "False",
        "WriteLoop",
        f"stopped writing {label}{more}: every write is undone, fields that keep differing: "
        f"{', '.join(fields[:8])}; is a mutating webhook or policy rewriting them? Writes resume after a "
        "backoff or on a change of the platform",
    )


def ready_condition(areas: list[ConditionState]) -> ConditionState:
    failing = [c for c in areas if c.status != "True"]
    if not failing:
        return ConditionState(READY, "True", "Ready", "the platform is reconciled and every service is ready")
    first = failing[0]
    return ConditionState(READY, "False", first.reason, f"{first.type}: {first.message}")


def service_statuses(
    services: list[EffectiveService], deployments: dict[str, dict[str, Any] | None]
) -> list[ServiceStatus]:
    out = []
    for svc in services:
        # Under an HPA the Deployment starts at one replica until the HPA raises it to its lower
        # bound: the service is not ready before it runs at least that many.
        floor = svc.autoscaling.min_replicas if svc.autoscaling.enabled else 0
        r = deployment_readiness(deployments.get(svc.name), floor=floor)
        out.append(ServiceStatus(name=svc.name, desiredReplicas=r.desired, readyReplicas=r.ready, ready=r.available))
    return out


def build_status(
    spec: MicroservicePlatformSpec,
    generation: int,
    services: list[ServiceStatus],
    conditions: list[dict[str, Any]],
) -> dict[str, Any]:
    sized = sizing(spec)
    status = MicroservicePlatformStatus(
        observedGeneration=generation,
        conditions=[Condition.model_validate(c) for c in conditions],
        readyServices=f"{sum(s.ready for s in services)}/{len(services)}",
        services=services,
        effectiveDefaults=EffectiveDefaults(
            resilience=default_resilience(spec),
            autoscaling=default_autoscaling(spec),
            resources=default_resources(spec),
        ),
        sizing=Sizing(
            dailyUsers=sized.daily_users,
            averageRequestsPerSecond=sized.average_rps,
            peakRequestsPerSecond=sized.peak_rps,
            minReplicas=sized.min_replicas,
            maxReplicas=sized.max_replicas,
            partitions=sized.partitions,
        )
        if sized
        else None,
    )
    return status.model_dump(mode="json", exclude_none=True)
