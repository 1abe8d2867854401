"""The `PlatformService` API, `keelson.dev/v1alpha1`: a service a product team owns.

A PlatformService is one entry of a platform's `spec.services`, written in the team's own
namespace with a `platformRef`. The platform's `spec.tenancy` decides whether it is accepted
(`keelson.tenancy`); once it is, the platform's operator pass renders it like any other service,
but into the team's namespace and owned by the PlatformService, so deleting it removes them.
Its status says whether it was accepted, and why not.

As for the platform, the pydantic models are the one source of the CRD's schema (`api.crd`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keelson.api.status import Condition
from keelson.api.v1alpha1 import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    MAX_PLATFORM_NAME,
    ObjectMeta,
    Service,
    _cel,
    _Model,
)

KIND = "PlatformService"
PLURAL = "platformservices"
SINGULAR = "platformservice"
SHORT_NAMES = ["psvc"]


class PlatformRef(_Model):
    """The MicroservicePlatform a PlatformService attaches to."""

    name: str = Field(max_length=MAX_PLATFORM_NAME, pattern=DNS1123_SUBDOMAIN, description="The platform's name.")
    namespace: str | None = Field(
        None, max_length=63, pattern=DNS1123_LABEL, description="The platform's namespace (default this one)."
    )


SERVICE_RULES: list[Any] = list(Service.model_config["json_schema_extra"]["x-kubernetes-validations"])  # type: ignore[index,arg-type]


class PlatformServiceSpec(Service):
    """One service of a platform, owned by a product team: the fields of a `spec.services` entry
    and the platform it attaches to. It runs the team's own image (the bundled reference services
    are the platform's)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                *SERVICE_RULES,
                _cel("has(self.image)", "a PlatformService runs its team's own image: set image", ".image"),
            ]
        }
    )

    platformRef: PlatformRef = Field(description="The platform to attach to.")

    @model_validator(mode="after")
    def _own_image(self) -> PlatformServiceSpec:
        if self.image is None:
            raise ValueError("a PlatformService runs its team's own image: set image")
        return self

    def service(self) -> Service:
        """The entry it adds to the platform's services."""
        return Service.model_validate(self.model_dump(exclude={"platformRef"}, exclude_none=True))


class PlatformServiceStatus(BaseModel):
    """What the platform's operator made of the PlatformService, written only by the operator."""

    model_config = ConfigDict(extra="ignore")

    observedGeneration: int | None = Field(None, description="The generation this status describes.")
    conditions: list[Condition] | None = Field(
        None,
        description="Accepted (attached, or refused with the reason) and Ready (its Deployment is available).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    platform: str | None = Field(None, description="The platform it is attached to, namespace/name.")
    url: str | None = Field(None, description="Where the platform's services reach it, when accepted.")


class PlatformServiceMeta(ObjectMeta):
    # Name clashes between PlatformServices go to the oldest (keelson.tenancy).
    creationTimestamp: str = ""


class PlatformService(BaseModel):
    """A whole `PlatformService` object as read from the API."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    metadata: PlatformServiceMeta
    spec: PlatformServiceSpec

    @classmethod
    def from_object(cls, obj: Any) -> PlatformService:
        return cls.model_validate(obj)

    @property
    def platform_key(self) -> tuple[str, str]:
        ref = self.spec.platformRef
        return (ref.namespace or self.metadata.namespace, ref.name)


def platform_key_of(obj: Any) -> tuple[str, str] | None:
    """The (namespace, name) of the platform a raw PlatformService object refers to, if any."""
    ref = (obj.get("spec") or {}).get("platformRef") or {}
    name = ref.get("name")
    if not isinstance(name, str) or not name:
        return None
    return (str(ref.get("namespace") or (obj.get("metadata") or {}).get("namespace") or ""), name)
