"""The `MicroservicePlatform` API, `keelson.dev/v1alpha1`.

These pydantic models are the single source of the API: the CRD's OpenAPI schema (with its CEL
rules) is generated from them (see `keelson.api.crd`), and the operator parses every object
through them. Fields carry no schema defaults on purpose: a `default:` in the CRD makes GitOps
tools report drift forever for fields the user left out. The operator applies defaults itself
(`keelson.api.effective`) and reports the effective values in status.

Every cross-field rule is written twice, once as CEL (enforced by the API server at admission)
and once as a pydantic validator (for `keelson render` and unit tests); a test feeds the same
invalid platforms to both.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict

GROUP = "keelson.dev"
VERSION = "v1alpha1"
KIND = "MicroservicePlatform"
PLURAL = "microserviceplatforms"
SINGULAR = "microserviceplatform"
SHORT_NAMES = ["msp"]
CATEGORIES = ["keelson"]

# Bounds that keep the CEL rules within the API server's cost budget; they are also sane limits.
MAX_SERVICES = 256
MAX_CALLS = 32
MAX_EVENTS = 64

DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"  # namespace names
# Object names (Secrets, IngressClasses, Gateways): a DNS-1123 subdomain.
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A host name as Ingress and HTTPRoute accept it: a DNS-1123 subdomain, optionally `*.` first.
HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Label values carry the platform's name on every child, so a name must fit one (63 characters).
MAX_PLATFORM_NAME = 63
# A CloudNativePG Cluster's name is at most 50 characters; the emitted one is `<platform>-db`.
MAX_CNPG_CLUSTER_NAME = 50
# A segment ends with a letter or digit: topics are also Kubernetes object names (KafkaTopic).
SEGMENT = r"[a-z]([a-z0-9-]*[a-z0-9])?"
DOMAIN_PATTERN = rf"^{SEGMENT}$"
EVENT_PATTERN = rf"^{SEGMENT}\.{SEGMENT}$"
# Kafka's limit is 249 characters, and the longest derived name is `<topic>.<service>.retry-16`
# (a service name is at most 63): so a topic is at most 176, and an event of this domain
# (`entity.action` after the domain and a dot) at most 112.
MAX_TOPIC = 249 - len(".") - 63 - len(".retry-16")
MAX_EVENT = MAX_TOPIC - 63 - len(".")
SUBSCRIPTION_PATTERN = rf"^({SEGMENT}\.)?{SEGMENT}\.{SEGMENT}$"
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

REFERENCE_SERVICES = ("gateway", "users", "orders", "payments", "notifications")

# Components (`keelson.api.components`): `redis@1` or `redis@1.2` pins a type by major or by
# major.minor, the one way to pin (never a patch: a patch is what a platform team ships to
# everyone on that line).
TYPE_PIN = r"^[a-z]([-a-z0-9]*[a-z0-9])?@(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))?$"
MAX_TYPE = 40
MAX_COMPONENT_NAME = 30
MAX_COMPONENTS = 16
# `<service>-<component>` names every object of a component (or prefixes it): room for a suffix
# such as `-headless` or a StatefulSet pod's ordinal within 63 characters.
MAX_FULLNAME = 52


def _cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    """One `x-kubernetes-validations` entry."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


class _Model(BaseModel):
    """Base: camelCase field names as in the CRD, unknown fields refused (the API server prunes)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# A non-negative quantity (requests and limits cannot be negative), with a length bound that keeps
# the CEL rules comparing quantities within the API server's cost budget.
NON_NEGATIVE_QUANTITY_PATTERN = QUANTITY_PATTERN.replace(r"^(\+|-)?", r"^\+?", 1)
Quantity = Annotated[
    str | int,
    Field(
        json_schema_extra={
            "x-kubernetes-int-or-string": True,
            "pattern": NON_NEGATIVE_QUANTITY_PATTERN,
            "maxLength": 64,
            "minimum": 0,
        }
    ),
]


class CircuitBreaker(_Model):
    """Per-downstream circuit breaker of every synchronous call."""

    consecutiveFailures: int | None = Field(
        None, ge=1, le=100, description="Consecutive failures that open the breaker (default 3)."
    )
    openSeconds: int | None = Field(
        None, ge=1, le=3600, description="Seconds the breaker stays open before a probe (default 30)."
    )


class Retry(_Model):
    """Retry schedule of asynchronous consumers (and of idempotent synchronous calls)."""

    backoffSeconds: list[Annotated[int, Field(ge=0, le=3600)]] | None = Field(
        None,
        min_length=1,
        max_length=16,
        description="Delay before each retry, in seconds (default [1, 2, 4, 8]).",
    )
    maxRetries: int | None = Field(
        None,
        ge=0,
        le=16,
        description="Retries before a message goes to the dead-letter queue (default 3).",
    )


class Resilience(_Model):
    """Timeouts, circuit breaking and retries, rendered into each service's ConfigMap."""

    timeoutSeconds: float | None = Field(
        None, gt=0, le=300, description="Timeout of every synchronous request, in seconds (default 5)."
    )
    circuitBreaker: CircuitBreaker | None = Field(None, description="Circuit breaker settings.")
    retry: Retry | None = Field(None, description="Retry and dead-letter settings.")


class Autoscaling(_Model):
    """HorizontalPodAutoscaler settings (autoscaling/v2, CPU utilisation)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                    "minReplicas must not be greater than maxReplicas",
                    ".minReplicas",
                )
            ]
        }
    )

    enabled: bool | None = Field(
        None, description="Whether an HPA scales the service (default true); when false, `replicas` applies."
    )
    minReplicas: int | None = Field(None, ge=1, le=1000, description="Lower bound of the HPA.")
    maxReplicas: int | None = Field(None, ge=1, le=1000, description="Upper bound of the HPA.")
    targetCPUUtilizationPercentage: int | None = Field(
        None, ge=1, le=100, description="Average CPU utilisation the HPA aims for (default 70)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.minReplicas is not None and self.maxReplicas is not None and self.minReplicas > self.maxReplicas:
            raise ValueError("minReplicas must not be greater than maxReplicas")
        return self


# The resources a service may request: what every node has. Extended resources (GPUs) need
# requests equal to limits and whole numbers, which the defaults and sizing cannot promise.
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")
# The values' syntax is the schema's `pattern` (see Quantity), cheaper than CEL's isQuantity.
_RESOURCE_LIST_RULES = [
    _cel(
        "self.all(k, k in [" + ", ".join(f"'{r}'" for r in RESOURCE_NAMES) + "])",
        "resource names are " + ", ".join(RESOURCE_NAMES),
    ),
]
ResourceList = Annotated[
    dict[str, Quantity],
    Field(max_length=len(RESOURCE_NAMES), json_schema_extra={"x-kubernetes-validations": _RESOURCE_LIST_RULES}),
]


def _check_resource_list(values: dict[str, str | int] | None) -> dict[str, str | int] | None:
    from kubernetes.utils import parse_quantity

    for key, value in (values or {}).items():
        if key not in RESOURCE_NAMES:
            raise ValueError(f"resource names are {', '.join(RESOURCE_NAMES)}, not {key!r}")
        try:
            quantity = parse_quantity(value)
        except ValueError:
            raise ValueError(f"{key}: {value!r} is not a quantity, e.g. 500m, 0.5, 256Mi or 1G") from None
        if quantity < 0:
            raise ValueError(f"{key}: every value must be a non-negative quantity")
    return values


class Resources(_Model):
    """Compute requests and limits of a container, as in a Pod spec.

    Requests may not exceed limits within one `resources`; across levels (Keelson's defaults,
    `spec.defaults`, the service) the more specific level wins: a service that requests 1Gi under
    an inherited 256Mi limit gets a 1Gi limit, and one that limits to 100Mi under an inherited
    128Mi request gets a 100Mi request (docs/admission.md)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    # One rule per name rather than `self.requests.all(...)`: the API server
                    # estimates a rule's worst case, and a loop over a map inside 256 services
                    # exceeds the CRD's budget; three fixed keys keep it constant.
                    f"!has(self.requests) || !has(self.limits) || !('{r}' in self.requests) || "
                    f"!('{r}' in self.limits) || "
                    f"quantity(string(self.requests['{r}'])).compareTo(quantity(string(self.limits['{r}']))) <= 0",
                    f"requests must not exceed limits ({r})",
                    ".requests",
                )
                for r in RESOURCE_NAMES
            ]
        }
    )

    requests: ResourceList | None = Field(None, description="Requested resources (cpu, memory, ephemeral-storage).")
    limits: ResourceList | None = Field(None, description="Resource limits (cpu, memory, ephemeral-storage).")

    _lists = field_validator("requests", "limits")(_check_resource_list)

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        from kubernetes.utils import parse_quantity

        for key, request in (self.requests or {}).items():
            limit = (self.limits or {}).get(key)
            if limit is not None and parse_quantity(request) > parse_quantity(limit):
                raise ValueError(f"requests must not exceed limits ({key}: {request} > {limit})")
        return self


class Defaults(_Model):
    """Settings every service inherits unless it sets its own."""

    resilience: Resilience | None = Field(None, description="Default resilience settings.")
    autoscaling: Autoscaling | None = Field(None, description="Default autoscaling settings.")
    resources: Resources | None = Field(None, description="Default container resources.")


class SecretRef(_Model):
    """A reference to a Secret in the platform's namespace."""

    name: str = Field(max_length=253, pattern=DNS1123_SUBDOMAIN, description="Name of the Secret.")


# Topic-level configs Keelson lets a platform set; anything else is refused at admission, since a
# misspelt key would otherwise be silently ignored by the brokers.
TOPIC_CONFIG_KEYS = (
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
)
_TOPIC_CONFIG_RULE = _cel(
    "self.all(k, k in [" + ", ".join(f"'{k}'" for k in TOPIC_CONFIG_KEYS) + "])",
    "unknown topic config key; allowed: " + ", ".join(TOPIC_CONFIG_KEYS),
)
TopicConfig = Annotated[
    dict[str, Annotated[str, Field(max_length=256)]],
    Field(max_length=32, json_schema_extra={"x-kubernetes-validations": [_TOPIC_CONFIG_RULE]}),
]


def _check_topic_config(config: dict[str, str] | None) -> dict[str, str] | None:
    unknown = sorted(set(config or {}) - set(TOPIC_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown topic config key(s) {unknown}; allowed: {', '.join(TOPIC_CONFIG_KEYS)}")
    return config


class TopicSettings(_Model):
    """Settings of one topic, overriding spec.kafka's for it."""

    name: str = Field(
        max_length=MAX_TOPIC,
        pattern=SUBSCRIPTION_PATTERN,
        description="The event (entity.action of this domain) or full topic name the settings apply to.",
    )
    partitions: int | None = Field(None, ge=1, le=10000, description="Partitions of this topic.")
    config: TopicConfig | None = Field(None, description="Topic configs, e.g. retention.ms, cleanup.policy.")

    _config = field_validator("config")(_check_topic_config)


class KafkaCaRef(_Model):
    """A Secret of the platform's namespace holding the CA certificate(s) that signed the brokers'."""

    name: str = Field(max_length=253, pattern=DNS1123_SUBDOMAIN, description="Name of the Secret.")
    key: str | None = Field(
        None, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key of the PEM bundle (default ca.crt)."
    )


class KafkaTls(_Model):
    """TLS to the brokers: the brokers' certificates are verified, host names included."""

    caSecretRef: KafkaCaRef | None = Field(
        None, description="CA to verify the brokers with; unset: the system's trusted CAs."
    )


class KafkaAuthentication(_Model):
    """SASL authentication to the brokers, and a Kafka user of its own for every service that publishes or
    subscribes (provider admin: a SCRAM user and ACLs set through the Admin API; provider strimzi: a KafkaUser).
    Each service's credentials are in the Secret `<platform>-<service>-kafka` (keys username, password)."""

    type: Literal["scram-sha-512"] = Field(description="SASL mechanism: scram-sha-512 (SASL/SCRAM-SHA-512).")
    adminSecretRef: SecretRef | None = Field(
        None,
        description="Secret with the operator's own credentials (keys username, password): a user allowed to "
        "manage topics, SCRAM users and ACLs. Required with provider admin.",
    )


class Kafka(_Model):
    """Where the platform's topics live and how Keelson provisions them."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.provider) || self.provider != 'strimzi' || has(self.strimziCluster)",
                    "strimziCluster is required when provider is strimzi",
                    ".strimziCluster",
                ),
                _cel(
                    "!has(self.authentication) || !has(self.provider) || self.provider != 'admin' || "
                    "has(self.authentication.adminSecretRef)",
                    "authentication.adminSecretRef is required when provider is admin",
                    ".authentication",
                ),
            ]
        }
    )

    provider: Literal["admin", "strimzi", "none"] | None = Field(
        None,
        description="admin: talk to the brokers' Admin API; strimzi: emit KafkaTopic objects; "
        "none: only list topics in status (default none).",
    )
    bootstrapServers: str | None = Field(
        None, max_length=1024, description="Comma-separated host:port list of the brokers."
    )
    strimziCluster: str | None = Field(
        None,
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Strimzi Kafka cluster that owns the topics (provider strimzi); it is a label value on "
        "every KafkaTopic, so at most 63 characters.",
    )
    partitions: int | None = Field(
        None,
        ge=1,
        le=10000,
        description="Partitions per topic; derived from dailyUsers when unset. Can grow, never shrink.",
        json_schema_extra={
            "x-kubernetes-validations": [_cel("self >= oldSelf", "partitions can only grow, never shrink")]
        },
    )
    replicationFactor: int | None = Field(None, ge=1, le=10, description="Replication factor per topic (default 3).")
    config: TopicConfig | None = Field(None, description="Topic configs applied to every topic of the platform.")
    topics: list[TopicSettings] | None = Field(
        None,
        max_length=MAX_EVENTS,
        description="Per-topic overrides, keyed by name.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    deletionPolicy: Literal["Retain", "Delete"] | None = Field(
        None, description="Whether topics are deleted with the platform or when no longer declared (default Retain)."
    )
    tls: KafkaTls | None = Field(None, description="Connect to the brokers over TLS; unset: plaintext.")
    authentication: KafkaAuthentication | None = Field(
        None, description="SASL authentication, and a user with least-privilege ACLs per service; unset: none."
    )

    _config = field_validator("config")(_check_topic_config)

    @model_validator(mode="after")
    def _admin_credentials(self) -> Kafka:
        if self.authentication and self.provider == "admin" and self.authentication.adminSecretRef is None:
            raise ValueError("authentication.adminSecretRef is required when provider is admin")
        return self


class Databases(_Model):
    """How each service's own database is provisioned."""

    provider: Literal["postgres", "cloudnative-pg", "external"] | None = Field(
        None,
        description="postgres: CREATE ROLE/DATABASE on a server; cloudnative-pg: emit CloudNativePG "
        "objects; external: use a Secret per service (default postgres).",
    )
    adminSecretRef: SecretRef | None = Field(
        None, description="Secret with the admin connection (key `uri`, or host/port/user/password)."
    )
    deletionPolicy: Literal["Retain", "Delete"] | None = Field(
        None, description="Whether databases are dropped with the platform or the service (default Retain)."
    )
    cluster: str | None = Field(
        None,
        max_length=MAX_CNPG_CLUSTER_NAME,
        pattern=DNS1123_LABEL,
        description="cloudnative-pg: an existing CloudNativePG Cluster to use instead of emitting one per platform.",
    )
    instances: int | None = Field(
        None, ge=1, le=9, description="cloudnative-pg: instances of the emitted Cluster (default 3)."
    )
    storageSize: str | None = Field(
        None,
        max_length=32,
        pattern=QUANTITY_PATTERN,
        description="cloudnative-pg: storage per instance of the emitted Cluster (default 10Gi).",
    )


# An OTLP/HTTP base URL: scheme, a DNS name or IPv4 address, an optional port (1 to 65535) and path;
# nothing a NetworkPolicy could not be derived from.
PORT_PATTERN = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
OTLP_ENDPOINT_PATTERN = rf"^https?://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:{PORT_PATTERN})?(/[-A-Za-z0-9._~/%]*)?$"


class Tracing(_Model):
    """Export of the services' spans to an OpenTelemetry backend, over OTLP/HTTP."""

    otlpEndpoint: str = Field(
        max_length=512,
        pattern=OTLP_ENDPOINT_PATTERN,
        description="Base URL of an OTLP/HTTP receiver (an OpenTelemetry Collector, Jaeger, Tempo), e.g. "
        "http://otel-collector.observability:4318; spans go to <url>/v1/traces. Rendered as "
        "OTEL_EXPORTER_OTLP_ENDPOINT; the services' NetworkPolicies allow egress to its port (to that "
        "namespace for an in-cluster name, <service>.<namespace>[.svc[.cluster.local]]).",
    )
    sampleRatio: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Share of the traces the platform starts (at the gateway) that are recorded, from 0 to 1 "
        "(default 1); traces continued from a caller follow the caller's decision.",
    )


# A Prometheus duration as the Prometheus Operator accepts it (e.g. 30s, 1m, 1m30s), not zero.
PROMETHEUS_DURATION_PATTERN = r"^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# Labels Keelson sets on every child itself: the operator's watch and the ServiceMonitor's selector
# depend on them, so the user's `metrics.labels` must not override them.
RESERVED_LABELS = (
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/name",
    "keelson.dev/platform",
)
_RESERVED_LABELS_RULE = _cel(
    "!self.exists(k, k in [" + ", ".join(f"'{k}'" for k in RESERVED_LABELS) + "])",
    "labels must not set Keelson's own labels: " + ", ".join(RESERVED_LABELS),
)


class Metrics(_Model):
    """Scraping of the services' Prometheus metrics by a Prometheus Operator, and alerts on them.

    Both objects are optional third-party kinds (monitoring.coreos.com/v1): without the Prometheus
    Operator's CRDs the platform still goes Ready, and condition MonitoringReady says what is missing.
    """

    serviceMonitor: bool | None = Field(
        None,
        description="Emit a ServiceMonitor (monitoring.coreos.com/v1) that scrapes /metrics on the `http` "
        "port of every Service of the platform, and let prometheusNamespace reach that port through the "
        "NetworkPolicies (default false).",
    )
    interval: str | None = Field(
        None,
        min_length=2,
        max_length=32,
        pattern=PROMETHEUS_DURATION_PATTERN,
        description="Scrape interval, a Prometheus duration such as 15s, 1m or 1m30s (default 30s).",
    )
    prometheusNamespace: str | None = Field(
        None,
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Namespace of the Prometheus that scrapes the services: their NetworkPolicies admit it "
        "to the HTTP port when serviceMonitor is true (default monitoring).",
    )
    labels: (
        Annotated[
            dict[str, Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]],
            Field(max_length=16, json_schema_extra={"x-kubernetes-validations": [_RESERVED_LABELS_RULE]}),
        ]
        | None
    ) = Field(
        None,
        description="Extra labels on the ServiceMonitor and PrometheusRule, so that a Prometheus' "
        "serviceMonitorSelector and ruleSelector pick them up, e.g. release: kube-prometheus-stack.",
    )
    alerts: bool | None = Field(
        None,
        description="Emit a PrometheusRule (monitoring.coreos.com/v1) with the platform's alerts: circuit "
        "breaker open, messages dead-lettered, 5xx ratio, consumer lag, handler failures (default false).",
    )
    dashboards: bool | None = Field(
        None,
        description='Emit a ConfigMap <platform>-dashboards labelled grafana_dashboard: "1" with Grafana '
        "dashboards of the platform (overview, per-service RED, Kafka consumers), for Grafana's dashboard "
        "sidecar to load (default false).",
    )

    @field_validator("labels")
    @classmethod
    def _own_labels(cls, labels: dict[str, str] | None) -> dict[str, str] | None:
        reserved = sorted(set(labels or {}) & set(RESERVED_LABELS))
        if reserved:
            raise ValueError(f"labels must not set Keelson's own labels: {', '.join(reserved)}")
        return labels


class Observability(_Model):
    """Telemetry of the services beyond their logs: span export and Prometheus monitoring."""

    tracing: Tracing | None = Field(None, description="Export of spans (OpenTelemetry, OTLP/HTTP).")
    metrics: Metrics | None = Field(
        None, description="Prometheus Operator integration: a ServiceMonitor and a PrometheusRule."
    )


class GatewayRef(_Model):
    """A Gateway API Gateway that HTTPRoutes attach to."""

    name: str = Field(max_length=253, pattern=DNS1123_SUBDOMAIN, description="Name of the Gateway.")
    namespace: str | None = Field(
        None, max_length=63, pattern=DNS1123_LABEL, description="Namespace of the Gateway (default the platform's)."
    )
    sectionName: str | None = Field(
        None, max_length=253, pattern=DNS1123_SUBDOMAIN, description="Listener of the Gateway to attach to."
    )


class Gateway(_Model):
    """The public entry: which service is the API gateway and how traffic reaches it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.routeKind) || self.routeKind != 'HTTPRoute' || has(self.gatewayRef)",
                    "gatewayRef is required when routeKind is HTTPRoute",
                    ".gatewayRef",
                )
            ]
        }
    )

    service: str | None = Field(
        None,
        max_length=63,
        description="Name of the service that is the API gateway; every public request passes it.",
    )
    host: str | None = Field(
        None,
        max_length=253,
        pattern=HOSTNAME_PATTERN,
        description="Public host name routed to the gateway: a DNS name, `*.` allowed first, not an IP address.",
        json_schema_extra={
            "x-kubernetes-validations": [_cel("!self.matches('^[0-9.]+$')", "must not be an IP address")]
        },
    )
    routeKind: Literal["Ingress", "HTTPRoute"] | None = Field(
        None, description="Ingress (default) or a Gateway API HTTPRoute."
    )
    ingressClassName: str | None = Field(
        None, max_length=253, pattern=DNS1123_SUBDOMAIN, description="IngressClass of the Ingress."
    )
    gatewayRef: GatewayRef | None = Field(None, description="Gateway the HTTPRoute attaches to.")
    tlsSecretName: str | None = Field(
        None, max_length=253, pattern=DNS1123_SUBDOMAIN, description="Secret with the TLS certificate."
    )
    ingressControllerNamespace: str | None = Field(
        None,
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Namespace whose pods may reach the gateway (the ingress controller's or the "
        "Gateway's); default ingress-nginx for Ingress, the Gateway's namespace for HTTPRoute.",
    )
    trustedProxies: list[Annotated[str, Field(max_length=43)]] | None = Field(
        None,
        max_length=32,
        description="CIDRs of the proxies in front of the gateway whose X-Forwarded-For it believes when "
        "rate-limiting by client address. Default: the cluster's private ranges (10.0.0.0/8, 172.16.0.0/12, "
        "192.168.0.0/16, 100.64.0.0/10, fc00::/7), where the ingress controller or the Gateway's proxy runs "
        "(the gateway's NetworkPolicy admits no one else from outside the platform). [] trusts no proxy.",
        json_schema_extra={
            "x-kubernetes-validations": [_cel("self.all(c, isCIDR(c))", "each entry must be a CIDR, e.g. 10.0.0.0/8")]
        },
    )

    @field_validator("trustedProxies")
    @classmethod
    def _cidrs(cls, cidrs: list[str] | None) -> list[str] | None:
        for cidr in cidrs or []:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"trustedProxies: {cidr!r} is not a CIDR, e.g. 10.0.0.0/8") from None
            if "/" not in cidr:
                raise ValueError(f"trustedProxies: {cidr!r} is not a CIDR, e.g. {cidr}/32")
        return cidrs

    @model_validator(mode="after")
    def _route(self) -> Gateway:
        if self.routeKind == "HTTPRoute" and self.gatewayRef is None:
            raise ValueError("gatewayRef is required when routeKind is HTTPRoute")
        if self.host and re.fullmatch(r"[0-9.]+", self.host):
            raise ValueError("host: must not be an IP address")
        return self


class DatabaseRequest(_Model):
    """A database of the service's own."""

    engine: Literal["postgres"] = Field(description="Database engine; postgres for now.")
    secretRef: SecretRef | None = Field(None, description="Secret with the connection (provider external only).")


class Expose(_Model):
    """How the gateway routes public requests to the service."""

    path: str = Field(max_length=253, pattern=r"^/[A-Za-z0-9/_.-]*$", description="Public path prefix, e.g. /orders.")


class KeyRef(_Model):
    """A key of a Secret or ConfigMap."""

    name: str = Field(max_length=253, pattern=DNS1123_SUBDOMAIN, description="Name of the object.")
    key: str = Field(max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="The key to select.")
    optional: bool | None = Field(None, description="Whether the object or key may be missing.")


class EnvVarSource(_Model):
    """Where an environment variable's value comes from: exactly one of its fields."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.secretKeyRef) != has(self.configMapKeyRef)",
                    "exactly one of secretKeyRef or configMapKeyRef must be set",
                )
            ]
        }
    )

    secretKeyRef: KeyRef | None = Field(None, description="A key of a Secret.")
    configMapKeyRef: KeyRef | None = Field(None, description="A key of a ConfigMap.")

    @model_validator(mode="after")
    def _one(self) -> EnvVarSource:
        if (self.secretKeyRef is None) == (self.configMapKeyRef is None):
            raise ValueError("exactly one of secretKeyRef or configMapKeyRef must be set")
        return self


class EnvVar(_Model):
    """An environment variable of the service's container: a literal `value` or a `valueFrom`."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.value) || size(self.value) == 0 || !has(self.valueFrom)",
                    "value and valueFrom must not both be set",
                )
            ]
        }
    )

    name: str = Field(max_length=253, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", description="Variable name.")
    value: str | None = Field(None, description="Literal value.")
    valueFrom: EnvVarSource | None = Field(None, description="Value from a Secret or ConfigMap key.")

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if self.value and self.valueFrom is not None:
            raise ValueError("value and valueFrom must not both be set")
        return self


ServiceName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS1035_LABEL)]
EventName = Annotated[str, Field(max_length=MAX_EVENT, pattern=EVENT_PATTERN)]
SubscriptionName = Annotated[str, Field(max_length=MAX_TOPIC, pattern=SUBSCRIPTION_PATTERN)]


CIDR_MESSAGE = "cidr must be a canonical CIDR with no bits beyond its prefix, e.g. 203.0.113.0/24 or 2001:db8::/32"


class PortRule(_Model):
    port: int = Field(ge=1, le=65535, description="Port number.")
    protocol: Literal["TCP", "UDP"] | None = Field(None, description="TCP (default) or UDP.")


class EgressRule(_Model):
    """Connections to outside the platform a NetworkPolicy allows (DNS is always allowed)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                # What NetworkPolicy's validation takes: no bits beyond the prefix, no leading
                # zeros, no IPv4-mapped IPv6; canonical, as the API server stores it.
                _cel(
                    "!has(self.cidr) || (isCIDR(self.cidr) && string(cidr(self.cidr).masked()) == self.cidr)",
                    CIDR_MESSAGE,
                    ".cidr",
                )
            ]
        }
    )

    cidr: str | None = Field(
        None, max_length=43, description="An address block (e.g. 203.0.113.0/24); unset: any address on these ports."
    )
    ports: list[PortRule] = Field(min_length=1, max_length=16, description="Ports.")

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, cidr: str | None) -> str | None:
        if cidr is not None:
            try:
                net = ipaddress.ip_network(cidr, strict=True)
            except ValueError:
                raise ValueError(CIDR_MESSAGE) from None
            if str(net) != cidr or (isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped):
                raise ValueError(CIDR_MESSAGE)
        return cidr


class ComponentUse(_Model):
    """A component a service uses: an instance of a platform team's ComponentDefinition."""

    name: str = Field(
        min_length=1,
        max_length=MAX_COMPONENT_NAME,
        pattern=DNS1035_LABEL,
        description="Name of this use, unique in the service; its objects are named <service>-<name>.",
    )
    type: str = Field(
        max_length=MAX_TYPE + 12,
        pattern=TYPE_PIN,
        description="Component type pinned to a major or major.minor version, e.g. redis@1 or redis@1.2.",
    )
    parameters: dict[str, Any] | None = Field(
        None,
        description="Parameters, checked against the definition's schema.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    @property
    def type_name(self) -> str:
        return self.type.partition("@")[0]

    @property
    def pin(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.type.partition("@")[2].split("."))


class Service(_Model):
    """One microservice of the platform."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.reference) != has(self.image)",
                    "exactly one of reference or image must be set",
                ),
                _cel(
                    "!has(self.calls) || !(self.name in self.calls)",
                    "a service must not call itself",
                    ".calls",
                ),
                _cel(
                    f"!has(self.components) || self.components.all(c, size(self.name) + size(c.name) < {MAX_FULLNAME})",
                    f"a component's objects are named <service>-<component>: at most {MAX_FULLNAME} characters",
                    ".components",
                ),
            ]
        }
    )

    name: ServiceName = Field(description="Service name, a DNS-1035 label; unique in the platform.")
    reference: Literal["gateway", "users", "orders", "payments", "notifications"] | None = Field(
        None, description="A bundled reference service to run (exactly one of reference/image)."
    )
    image: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        pattern=r"^\S+$",
        description="A custom container image (exactly one of reference/image).",
    )
    port: int | None = Field(None, ge=1, le=65535, description="Container and Service port (default 8080).")
    replicas: int | None = Field(None, ge=0, le=1000, description="Replicas when autoscaling is off.")
    autoscaling: Autoscaling | None = Field(None, description="Overrides defaults.autoscaling.")
    resources: Resources | None = Field(None, description="Overrides defaults.resources.")
    resilience: Resilience | None = Field(None, description="Overrides defaults.resilience.")
    database: DatabaseRequest | None = Field(None, description="A database of the service's own.")
    publishes: list[EventName] | None = Field(
        None,
        max_length=MAX_EVENTS,
        description="Events the service publishes, as entity.action; topic <domain>.<entity>.<action>.",
    )
    subscribes: list[SubscriptionName] | None = Field(
        None,
        max_length=MAX_EVENTS,
        description="Events the service consumes: entity.action of this domain, or a full topic name.",
    )
    calls: list[ServiceName] | None = Field(
        None, max_length=MAX_CALLS, description="Services of this platform it calls synchronously."
    )
    expose: Expose | None = Field(None, description="Route public requests under a path to this service.")
    env: list[EnvVar] | None = Field(
        None,
        max_length=128,
        description="Extra environment variables, keyed by name; one of the database's variables of the "
        "same name is replaced.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    egress: list[EgressRule] | None = Field(
        None,
        max_length=16,
        description="Connections the service makes outside the platform (an SMTP relay, an SMS or push "
        "provider, a partner's API), added to its NetworkPolicy; nothing else leaves its pods.",
    )
    components: list[ComponentUse] | None = Field(
        None,
        max_length=MAX_COMPONENTS,
        description="Components the service uses (ComponentDefinitions), keyed by name.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @model_validator(mode="after")
    def _rules(self) -> Service:
        if (self.reference is None) == (self.image is None):
            raise ValueError("exactly one of reference or image must be set")
        if self.calls and self.name in self.calls:
            raise ValueError("a service must not call itself")
        names = [e.name for e in self.env or ()]
        if len(names) != len(set(names)):
            raise ValueError(f"services[{self.name}].env: duplicate entries for name")
        components = [c.name for c in self.components or ()]
        if len(components) != len(set(components)):
            raise ValueError(f"services[{self.name}].components: duplicate entries for name")
        for c in self.components or ():
            if len(self.name) + 1 + len(c.name) > MAX_FULLNAME:
                raise ValueError(
                    f"a component's objects are named <service>-<component>: at most {MAX_FULLNAME} characters"
                )
        return self


# A label key: an optional DNS-1123 subdomain prefix and a slash, then a name.
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LabelKey = Annotated[str, Field(max_length=317, pattern=LABEL_KEY)]
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)]


class LabelSelectorRequirement(_Model):
    """One `matchExpressions` entry, as in `metav1.LabelSelector`."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
                    "values must be non-empty for In and NotIn, and absent for Exists and DoesNotExist",
                ),
            ]
        }
    )

    key: LabelKey = Field(description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="How the key's value is tested.")
    values: list[LabelValue] | None = Field(None, max_length=64, description="Values for In and NotIn.")

    @model_validator(mode="after")
    def _values(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError("values must be non-empty for In and NotIn, and absent for Exists and DoesNotExist")
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator == "In":
            return value in (self.values or ())
        if self.operator == "NotIn":
            return value not in (self.values or ())
        return (value is not None) == (self.operator == "Exists")


class LabelSelector(_Model):
    """A label selector as in `metav1.LabelSelector`; an empty one selects everything."""

    matchLabels: dict[str, LabelValue] | None = Field(
        None,
        max_length=32,
        description="Labels that must match.",
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(f"self.all(k, size(k) <= 317 && k.matches(r'{LABEL_KEY}'))", "every key must be a label key")
            ]
        },
    )
    matchExpressions: list[LabelSelectorRequirement] | None = Field(
        None, max_length=32, description="Requirements that must all hold."
    )

    @field_validator("matchLabels")
    @classmethod
    def _keys(cls, labels: dict[str, str] | None) -> dict[str, str] | None:
        # A CRD schema cannot constrain map keys with a pattern (no propertyNames): CEL does it
        # at admission (above), this in `keelson render` and at reconcile time.
        for key in labels or {}:
            if len(key) > 317 or not re.fullmatch(LABEL_KEY, key):
                raise ValueError(f"matchLabels: {key!r} is not a label key")
        return labels

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in (self.matchLabels or {}).items()):
            return False
        return all(e.matches(labels) for e in self.matchExpressions or ())


class Tenancy(_Model):
    """Which namespaces' `PlatformService`s may attach to the platform, and what they may do.

    Without it the platform accepts no PlatformService. An attached service may always call the
    platform's services it declares and publish its own events; anything that reaches further is
    allowed here."""

    namespaceSelector: LabelSelector = Field(
        description="Namespaces whose PlatformServices may attach (`{}`: every namespace)."
    )
    expose: bool | None = Field(None, description="Whether they may be exposed on the gateway (default false).")
    subscribe: bool | None = Field(
        None,
        description="Whether they may subscribe to topics that services outside their namespace publish (default "
        "false).",
    )
    componentTypes: list[Annotated[str, Field(max_length=MAX_TYPE, pattern=DNS1035_LABEL)]] | None = Field(
        None, max_length=64, description="Component types (ComponentDefinition types) they may use (default none)."
    )


class MicroservicePlatformSpec(_Model):
    """The desired platform: its services, their call graph and events, and shared settings."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    # sets.contains keeps the estimated cost within the API server's budget at MAX_SERVICES;
                    # a nested exists() over services does not.
                    "self.services.all(s, !has(s.calls) || sets.contains(self.services.map(t, t.name), s.calls))",
                    "every name in services[].calls must be a service of this platform",
                    ".services",
                ),
                _cel(
                    "!has(self.databases) || !has(self.databases.provider) || "
                    "self.databases.provider != 'external' || "
                    "self.services.all(s, !has(s.database) || has(s.database.secretRef))",
                    "with databases.provider external, every services[].database needs a secretRef",
                    ".services",
                ),
                _cel(
                    "!has(self.gateway) || !has(self.gateway.service) || "
                    "self.services.exists(s, s.name == self.gateway.service)",
                    "gateway.service must be a service of this platform",
                    ".gateway.service",
                ),
            ]
        }
    )

    domain: str = Field(
        max_length=63,
        pattern=DOMAIN_PATTERN,
        description="Business domain; the first segment of every topic name. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [_cel("self == oldSelf", "domain is immutable")]},
    )
    dailyUsers: int | None = Field(
        None,
        ge=1,
        le=10_000_000_000,
        description="Expected daily active users; sizes replicas, HPA bounds and partitions when unset "
        "(see docs/sizing.md).",
    )
    defaults: Defaults | None = Field(None, description="Settings every service inherits.")
    kafka: Kafka | None = Field(None, description="Kafka topics of the platform.")
    databases: Databases | None = Field(None, description="Databases of the services.")
    gateway: Gateway | None = Field(None, description="The API gateway and its public route.")
    observability: Observability | None = Field(
        None, description="Tracing (where the services export spans) and Prometheus monitoring."
    )
    tenancy: Tenancy | None = Field(
        None, description="Which namespaces may attach PlatformServices to this platform, and what they may do."
    )
    services: list[Service] = Field(
        min_length=1,
        max_length=MAX_SERVICES,
        description="The services, a list keyed by name.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @field_validator("services")
    @classmethod
    def _unique_names(cls, services: list[Service]) -> list[Service]:
        seen: set[str] = set()
        for svc in services:
            if svc.name in seen:
                raise ValueError(f"duplicate service name {svc.name!r}")
            seen.add(svc.name)
        return services

    @model_validator(mode="after")
    def _graph(self) -> MicroservicePlatformSpec:
        names = {s.name for s in self.services}
        for svc in self.services:
            for callee in svc.calls or ():
                if callee not in names:
                    raise ValueError(f"services[{svc.name}].calls: {callee!r} is not a service of this platform")
        if self.gateway and self.gateway.service and self.gateway.service not in names:
            raise ValueError("gateway.service must be a service of this platform")
        if self.databases and self.databases.provider == "external":
            for svc in self.services:
                if svc.database and not svc.database.secretRef:
                    raise ValueError(f"services[{svc.name}].database: provider external needs a secretRef")
        return self

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)


class ObjectMeta(BaseModel):
    """The part of metadata the operator reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Placement(BaseModel):
    """Where a service a PlatformService attached lives, and who owns its objects
    (`keelson.tenancy`). Never read from an object: the operator works it out every pass."""

    model_config = ConfigDict(frozen=True)

    service: str
    namespace: str
    name: str  # the PlatformService's
    uid: str

    @property
    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "PlatformService",
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


class MicroservicePlatform(BaseModel):
    """A whole `MicroservicePlatform` object as read from the API or a manifest."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    apiVersion: str = f"{GROUP}/{VERSION}"
    kind: str = KIND
    metadata: ObjectMeta
    spec: MicroservicePlatformSpec
    # The services PlatformServices attached (their spec merged into `spec.services` by the
    # operator, `keelson.tenancy`), by name; empty as read from the API.
    placements: dict[str, Placement] = Field(default_factory=dict, exclude=True)

    @classmethod
    def from_object(cls, obj: Any) -> MicroservicePlatform:
        return cls.model_validate(obj)

    @model_validator(mode="after")
    def _names_fit(self) -> MicroservicePlatform:
        name = self.metadata.name
        if len(name) > MAX_PLATFORM_NAME:
            raise ValueError(
                f"metadata.name: at most {MAX_PLATFORM_NAME} characters (it is a label value on every child)"
            )
        dbs = self.spec.databases
        if dbs and dbs.provider == "cloudnative-pg" and not dbs.cluster and len(name) > CNPG_NAME_ROOM:
            raise ValueError(
                f"metadata.name: at most {CNPG_NAME_ROOM} characters with databases.provider cloudnative-pg and "
                "no databases.cluster (the emitted Cluster <name>-db is limited to 50)"
            )
        return self


CNPG_NAME_ROOM = MAX_CNPG_CLUSTER_NAME - len("-db")
# Rules on the whole object (they read metadata.name), the CEL twins of `_names_fit`.
ROOT_RULES: list[JsonDict] = [
    _cel(
        f"size(self.metadata.name) <= {MAX_PLATFORM_NAME}",
        f"metadata.name: at most {MAX_PLATFORM_NAME} characters (it is a label value on every child)",
    ),
    _cel(
        f"size(self.metadata.name) <= {CNPG_NAME_ROOM} || !has(self.spec.databases) || "
        "!has(self.spec.databases.provider) || self.spec.databases.provider != 'cloudnative-pg' || "
        "has(self.spec.databases.cluster)",
        f"metadata.name: at most {CNPG_NAME_ROOM} characters with databases.provider cloudnative-pg and no "
        "databases.cluster (the emitted Cluster <name>-db is limited to 50)",
    ),
]


def topic_name(domain: str, event: str) -> str:
    """`entity.action` of this domain, or a full `domain.entity.action`, as a topic name."""
    return event if event.count(".") == 2 else f"{domain}.{event}"


def is_valid_topic(name: str) -> bool:
    return re.fullmatch(rf"{SEGMENT}\.{SEGMENT}\.{SEGMENT}", name) is not None
