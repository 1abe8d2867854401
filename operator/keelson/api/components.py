"""The `ComponentDefinition` API, `keelson.dev/v1alpha1`: a platform team's building block.

A definition is one published *version* of a component type (`redis` 1.2.0 is the object
`redis-v1.2.0`): a parameters schema (an OpenAPI v3 subset, `keelson.components.schema`), Jinja2
templates of Kubernetes objects rendered in a sandbox (`keelson.components.templating`), the
environment it gives the service that uses it, the network edges it needs and how to tell it is
ready. A published version is immutable (the CRD's CEL rule `self == oldSelf` on spec): a change
is a new version, and platforms pinned to an older one see nothing of it (`type@major` or
`type@major.minor`, resolved to the highest published match, `keelson.components.resolve`).

As for the platform, the pydantic models are the one source of the CRD's schema (`api.crd`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from keelson.api.v1alpha1 import DNS1035_LABEL, GROUP, MAX_TYPE, VERSION, EgressRule, PortRule, _cel, _Model

DEFINITION_KIND = "ComponentDefinition"
DEFINITION_PLURAL = "componentdefinitions"
DEFINITION_SINGULAR = "componentdefinition"
DEFINITION_SHORT_NAMES = ["compdef"]

SEMVER = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$"

# What a component may make, and the API version each is written in: the kinds the operator
# watches, applies and prunes like its own (`kube.resources`), all namespaced. No
# PersistentVolumeClaim: a removed component's objects are pruned, and data must not go with them
# unless asked; a StatefulSet's volumeClaimTemplates make claims that outlive it (Kubernetes'
# default retention), which is where a component keeps data.
COMPONENT_KINDS: dict[str, str] = {
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "ServiceAccount": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "PodDisruptionBudget": "policy/v1",
}
ComponentKind = Literal[
    "ConfigMap",
    "Secret",
    "Service",
    "ServiceAccount",
    "Deployment",
    "StatefulSet",
    "Job",
    "CronJob",
    "PodDisruptionBudget",
]
EnvName = Annotated[str, Field(max_length=253, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
_FREE_FORM: JsonDict = {"x-kubernetes-preserve-unknown-fields": True}


class SecretOutput(_Model):
    """A key of a Secret the component makes, by the (templated) name of that Secret."""

    name: str = Field(max_length=512, description="Name of the Secret (a template, e.g. '{{ fullname }}-auth').")
    key: str = Field(max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="The key to select.")


class EnvOutput(_Model):
    """One environment variable the service using the component gets."""

    name: EnvName = Field(description="Variable name, e.g. REDIS_URL.")
    value: str | None = Field(
        None, max_length=4096, description="Its value, a template, e.g. 'redis://{{ fullname }}:6379'."
    )
    secretKeyRef: SecretOutput | None = Field(None, description="Its value from a Secret the component makes.")

    @model_validator(mode="after")
    def _one_source(self) -> EnvOutput:
        if (self.value is None) == (self.secretKeyRef is None):
            raise ValueError(f"outputs.env[{self.name}]: exactly one of value or secretKeyRef")
        return self


class Outputs(_Model):
    """What the service that uses the component gets."""

    env: list[EnvOutput] | None = Field(
        None,
        max_length=32,
        description="Environment variables of the service's containers.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class Network(_Model):
    """The edges the component needs under the platform's default-deny policy."""

    ports: list[PortRule] | None = Field(
        None, max_length=16, description="Ports on which the using service reaches the component's pods."
    )
    egress: list[EgressRule] | None = Field(
        None, max_length=16, description="Connections the component's pods make (DNS is always allowed)."
    )


class ReadinessRule(_Model):
    """How to tell an object of a kind is ready, beyond the defaults (Deployment available,
    StatefulSet ready, Job complete, anything else present)."""

    kind: ComponentKind = Field(description="The kind the rule applies to.")
    expression: str = Field(
        max_length=1024,
        description="A Jinja2 expression over `object` (the live object), true when ready, "
        'e.g. "object.status.readyReplicas | default(0) >= 1".',
    )


class Template(_Model):
    name: str = Field(max_length=63, pattern=DNS1035_LABEL, description="Name of the template, for messages.")
    template: str = Field(
        max_length=65536,
        description="Kubernetes objects as YAML (several documents allowed), a Jinja2 template over "
        "parameters, fullname, component, service and platform.",
    )


class ComponentDefinitionSpec(_Model):
    """One published version of a component type."""

    type: str = Field(max_length=MAX_TYPE, pattern=DNS1035_LABEL, description="The component type, e.g. redis.")
    version: str = Field(max_length=32, pattern=SEMVER, description="Semantic version MAJOR.MINOR.PATCH.")
    description: str | None = Field(None, max_length=4096, description="What the component is, for its users.")
    parameters: dict[str, Any] | None = Field(
        None,
        description="OpenAPI v3 schema of the parameters (type object; the subset the API server supports; "
        "defaults allowed).",
        json_schema_extra=_FREE_FORM,
    )
    example: dict[str, Any] | None = Field(
        None,
        description="Parameters of an example use: rendered at admission and by `keelson def vet`.",
        json_schema_extra=_FREE_FORM,
    )
    templates: list[Template] = Field(min_length=1, max_length=32, description="The templates of its objects.")
    allowedKinds: list[ComponentKind] = Field(
        min_length=1, max_length=9, description="Kinds its templates may make (others are refused)."
    )
    outputs: Outputs | None = Field(None, description="What the using service gets.")
    network: Network | None = Field(None, description="Network edges it needs.")
    readiness: list[ReadinessRule] | None = Field(None, max_length=10, description="Readiness rules by kind.")


def definition_name(type_: str, version: str) -> str:
    return f"{type_}-v{version}"


class ComponentDefinition(BaseModel):
    """A component type's published version, cluster-scoped; named `<type>-v<version>`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    apiVersion: str = f"{GROUP}/{VERSION}"
    kind: str = DEFINITION_KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ComponentDefinitionSpec

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @model_validator(mode="after")
    def _named_after_version(self) -> ComponentDefinition:
        want = definition_name(self.spec.type, self.spec.version)
        if self.metadata.get("name") not in (None, want):
            raise ValueError(f"metadata.name: must be {want} (<type>-v<version>)")
        return self


DEFINITION_ROOT_RULES: list[JsonDict] = [
    _cel(
        "self.metadata.name == self.spec.type + '-v' + self.spec.version",
        "metadata.name must be <spec.type>-v<spec.version>",
    ),
]
DEFINITION_SPEC_RULES: list[JsonDict] = [
    _cel("self == oldSelf", "a published version is immutable: publish a new version instead"),
]
