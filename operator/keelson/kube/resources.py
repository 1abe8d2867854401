"""The kinds Keelson writes, and where they live in the API. Static on purpose: the operator
touches a fixed set of kinds, and a discovery round-trip per reconcile would buy nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keelson.api import v1alpha1


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    def path(self, namespace: str, name: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        path = f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{path}/{name}" if name else path


CHILD_KINDS: tuple[Kind, ...] = (
    Kind("v1", "ServiceAccount", "serviceaccounts"),
    Kind("v1", "ConfigMap", "configmaps"),
    Kind("v1", "Service", "services"),
    Kind("apps/v1", "Deployment", "deployments"),
    # Kinds only components make (api.components.COMPONENT_KINDS).
    Kind("apps/v1", "StatefulSet", "statefulsets"),
    Kind("batch/v1", "Job", "jobs"),
    Kind("batch/v1", "CronJob", "cronjobs"),
    Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    Kind("networking.k8s.io/v1", "Ingress", "ingresses"),
    Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
    Kind("kafka.strimzi.io/v1", "KafkaTopic", "kafkatopics"),
    Kind("kafka.strimzi.io/v1", "KafkaUser", "kafkausers"),
    # Database credentials (only Keelson's own: the watch selects managed-by=keelson) and the
    # CloudNativePG objects of provider cloudnative-pg.
    Kind("v1", "Secret", "secrets"),
    Kind("postgresql.cnpg.io/v1", "Cluster", "clusters"),
    Kind("postgresql.cnpg.io/v1", "Database", "databases"),
    # Prometheus Operator objects of spec.observability.metrics (optional: the CRDs may be absent).
    Kind("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
    Kind("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules"),
)
PLATFORM_KIND = Kind(f"{v1alpha1.GROUP}/{v1alpha1.VERSION}", v1alpha1.KIND, v1alpha1.PLURAL)
DEFINITION_KIND = Kind(f"{v1alpha1.GROUP}/{v1alpha1.VERSION}", "ComponentDefinition", "componentdefinitions")
PLATFORM_SERVICE_KIND = Kind(f"{v1alpha1.GROUP}/{v1alpha1.VERSION}", "PlatformService", "platformservices")
EVENT_KIND = Kind("v1", "Event", "events")
SECRET_KIND = next(k for k in CHILD_KINDS if k.kind == "Secret")

_BY_KIND = {k.kind: k for k in (*CHILD_KINDS, PLATFORM_KIND, EVENT_KIND)}


def kind_of(obj: dict[str, Any]) -> Kind:
    return _BY_KIND[obj["kind"]]


ObjectKey = tuple[str, str, str]  # (kind, namespace, name)


def key_of(obj: dict[str, Any]) -> ObjectKey:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace", ""), meta["name"])
