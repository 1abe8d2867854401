"""Deployment per service, under the restricted Pod Security Standard."""

from __future__ import annotations

from typing import Any

from keelson.effective import EffectiveService
from keelson.render import callers
from keelson.render.components import component_env
from keelson.render.configmap import config_checksum, config_data
from keelson.render.context import RenderContext
from keelson.render.databases import database_env
from keelson.render.kafkausers import kafka_env
from keelson.render.labels import config_map_name, metadata, selector_labels, service_labels

RUN_AS = 10001


def _probes(svc: EffectiveService) -> dict[str, Any]:
    def check(path: str) -> dict[str, Any]:
        # Reference services serve /healthz and /readyz; a custom image promises only its port.
        if svc.reference:
            return {"httpGet": {"path": path, "port": "http"}}
        return {"tcpSocket": {"port": "http"}}

    return {
        # Startup gets up to 60 s before liveness may kill a slow starter (migrations run at start).
        "startupProbe": {**check("/healthz"), "periodSeconds": 2, "failureThreshold": 30},
        "livenessProbe": {**check("/healthz"), "periodSeconds": 10, "failureThreshold": 3},
        "readinessProbe": {**check("/readyz"), "periodSeconds": 5, "failureThreshold": 3},
    }


def _resources(svc: EffectiveService) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if svc.resources.requests:
        out["requests"] = {k: str(v) for k, v in svc.resources.requests.items()}
    if svc.resources.limits:
        out["limits"] = {k: str(v) for k, v in svc.resources.limits.items()}
    return out


def _container(ctx: RenderContext, svc: EffectiveService) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "app",
        "image": svc.image or ctx.reference_image,
        "ports": [{"name": "http", "containerPort": svc.port, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": config_map_name(svc.name)}}],
        "resources": _resources(svc),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        **_probes(svc),
    }
    if callers.token_volume(ctx, svc) is not None:
        container["volumeMounts"].append(callers.token_mount())
    if svc.reference:
        # One image for all reference services; the first argument picks the service.
        container["args"] = [svc.reference]
    # The database's, Kafka's and the components' variables first: a variable of the same name in
    # the service's own env wins. (SSA refuses an env list with two entries of one name, so the
    # replaced one is left out; two components giving one name are refused by render.components.)
    own = [e.model_dump(exclude_none=True) for e in svc.env]
    names = {e["name"] for e in own}
    given = [*database_env(ctx, svc), *kafka_env(ctx, svc), *component_env(ctx, svc)]
    env = [*(e for e in given if e["name"] not in names), *own]
    if env:
        container["env"] = env
    return container


def render_deployment(ctx: RenderContext, svc: EffectiveService) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector_labels(ctx, svc.name)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "template": {
            "metadata": {
                "labels": service_labels(ctx, svc.name),
                "annotations": {
                    "keelson.dev/config-checksum": config_checksum(config_data(ctx, svc)),
                    **ctx.pod_annotations.get(svc.name, {}),
                },
            },
            "spec": {
                "serviceAccountName": svc.name,
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": 30,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": RUN_AS,
                    "runAsGroup": RUN_AS,
                    "fsGroup": RUN_AS,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": selector_labels(ctx, svc.name)},
                    }
                ],
                "containers": [_container(ctx, svc)],
                "volumes": [
                    {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    *filter(None, [callers.token_volume(ctx, svc)]),
                ],
            },
        },
    }
    if not svc.autoscaling.enabled:
        # Under an HPA, replicas belong to the HPA: applying them would fight it on every reconcile.
        spec["replicas"] = svc.replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(ctx, svc.name, svc.name), "spec": spec}
