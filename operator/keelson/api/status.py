"""The status of a `MicroservicePlatform`, written only by the operator.

Conditions follow `metav1.Condition`, so `kubectl wait --for=condition=Ready` and Argo CD's
health checks read them like any other Kubernetes object's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from keelson.api.v1alpha1 import Autoscaling, Resilience, Resources


class _Status(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Condition(_Status):
    """One aspect of the platform's state, in the standard `metav1.Condition` shape."""

    type: str = Field(max_length=316, description="Condition type, e.g. Ready or WorkloadsReady.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    observedGeneration: int | None = Field(None, ge=0, description="Generation the condition was set for.")
    lastTransitionTime: str = Field(description="When the status last changed (RFC 3339).")
    reason: str = Field(max_length=1024, description="CamelCase reason for the last transition.")
    message: str = Field(max_length=32768, description="Human-readable details.")


class ComponentStatus(_Status):
    """One component of a service (a ComponentDefinition in use)."""

    name: str = Field(description="Name of the component in the service.")
    type: str = Field(description="The type as pinned, e.g. redis@1.")
    version: str = Field(description="The exact published version it resolved to.")
    ready: bool = Field(description="Whether every object of it is ready.")
    reason: str = Field(description="Ready, or what it waits for.")
    objects: list[str] = Field(description="Its objects, as Kind/name.")


class ServiceStatus(_Status):
    """Replica summary of one service."""

    name: str = Field(description="Service name.")
    desiredReplicas: int = Field(description="Replicas the Deployment asks for (the HPA's, when on).")
    readyReplicas: int = Field(description="Replicas that are ready.")
    ready: bool = Field(description="Whether the service is fully rolled out and available.")
    components: list[ComponentStatus] | None = Field(None, description="Its components, when it uses any.")


class Sizing(_Status):
    """Numbers derived from spec.dailyUsers by the sizing model (docs/sizing.md)."""

    dailyUsers: int = Field(description="The input.")
    averageRequestsPerSecond: float = Field(description="Average requests per second over a day.")
    peakRequestsPerSecond: float = Field(description="Expected peak requests per second.")
    minReplicas: int = Field(description="Derived HPA lower bound per service.")
    maxReplicas: int = Field(description="Derived HPA upper bound per service.")
    partitions: int = Field(description="Derived partitions per topic.")


class TopicStatus(_Status):
    """One Kafka topic of the platform."""

    name: str = Field(description="Topic name.")
    role: Literal["main", "retry", "dlq", "external"] = Field(
        description="main; a subscription's retry or dead-letter topic; or external (another domain's, "
        "expected to exist)."
    )
    partitions: int = Field(description="Desired partitions.")
    replicationFactor: int = Field(description="Desired replication factor.")
    exists: bool | None = Field(None, description="Whether the topic exists (unknown when it cannot be checked).")
    dlq: str | None = Field(None, description="For a retry or DLQ topic: the subscription's DLQ.")
    subscription: str | None = Field(None, description="For retry and DLQ topics: the consuming service.")
    message: str | None = Field(None, description="Why the topic is not as desired, when it is not.")


class DatabaseStatus(_Status):
    """One service's database."""

    service: str = Field(description="The service that owns the database.")
    provider: str = Field(description="postgres, cloudnative-pg or external.")
    database: str | None = Field(None, description="Database name on the server.")
    secret: str = Field(description="Secret with the service's credentials.")
    ready: bool = Field(description="Whether the database and its credentials are in place.")
    message: str | None = Field(None, description="What is wrong, when not ready; or what was retained.")


class KafkaUserStatus(_Status):
    """One service's Kafka user (spec.kafka.authentication)."""

    service: str = Field(description="The service whose user it is.")
    provider: str = Field(description="admin or strimzi.")
    user: str = Field(description="The Kafka user name (principal User:<user>).")
    secret: str = Field(description="Secret with the service's credentials (keys username, password).")
    ready: bool = Field(description="Whether the user and its ACLs are in place.")
    message: str | None = Field(None, description="What is wrong, when not ready.")


class AttachedServiceStatus(_Status):
    """A PlatformService that names the platform (spec.tenancy), accepted or refused."""

    namespace: str = Field(description="The PlatformService's namespace.")
    name: str = Field(description="The PlatformService's name.")
    uid: str = Field(description="Its uid: the owner of its objects, which the platform prunes if it is refused.")
    service: str | None = Field(None, description="The service name it asks for.")
    accepted: bool = Field(description="Whether it is attached.")
    reason: str = Field(description="Attached, or why it was refused.")


class EffectiveDefaults(_Status):
    """The defaults in force after Keelson's own were applied under the spec's."""

    resilience: Resilience = Field(description="Effective default resilience settings.")
    autoscaling: Autoscaling = Field(description="Effective default autoscaling settings.")
    resources: Resources = Field(description="Effective default container resources.")


class MicroservicePlatformStatus(_Status):
    """Observed state of the platform."""

    observedGeneration: int | None = Field(None, description="The generation last reconciled.")
    conditions: list[Condition] | None = Field(
        None,
        description="Ready, plus one condition per area (WorkloadsReady, RoutesReady, Paused).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    readyServices: str | None = Field(None, description="Ready services over all services, e.g. 4/5.")
    services: list[ServiceStatus] | None = Field(None, description="Per-service replica summary.")
    effectiveDefaults: EffectiveDefaults | None = Field(None, description="Effective defaults.")
    sizing: Sizing | None = Field(None, description="Numbers derived from dailyUsers, when given.")
    topics: list[TopicStatus] | None = Field(None, description="Kafka topics, retry topics and DLQs.")
    databases: list[DatabaseStatus] | None = Field(None, description="Each service's database.")
    kafkaUsers: list[KafkaUserStatus] | None = Field(None, description="Each service's Kafka user.")
    attached: list[AttachedServiceStatus] | None = Field(
        None, description="PlatformServices that name this platform, and whether they are attached."
    )
