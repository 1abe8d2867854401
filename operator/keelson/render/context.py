"""What every renderer needs to know about the platform, resolved once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from keelson.api.v1alpha1 import MicroservicePlatformSpec, Placement
from keelson.components.resolve import ResolvedComponent
from keelson.effective import EffectiveService, effective_services

DEFAULT_REFERENCE_IMAGE = "ghcr.io/keelson-dev/keelson:0.1.0"


@dataclass(frozen=True)
class TokenIssuer:
    """The cluster's service-account issuer: its `iss` and its public keys (a JWKS document),
    with which services verify each other's tokens (render.callers)."""

    issuer: str
    jwks: str  # canonical JSON: the ConfigMap, and the checksum that rolls pods, follow key rotation


@dataclass(frozen=True)
class RenderContext:
    """A validated platform plus the few facts that do not come from its spec."""

    name: str
    namespace: str
    spec: MicroservicePlatformSpec
    reference_image: str = DEFAULT_REFERENCE_IMAGE
    # Per-service pod-template annotations from the areas (e.g. a credentials checksum that rolls
    # the pods when a password is rotated).
    pod_annotations: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # None when the operator could not read it: services then refuse every internal call.
    token_issuer: TokenIssuer | None = None
    # The services' components, resolved against the published ComponentDefinitions
    # (`keelson.components.resolve`): the one input that does not come from this spec alone.
    components: tuple[ResolvedComponent, ...] = ()
    # Services attached by PlatformServices (`keelson.tenancy`), by name: their objects live in
    # their team's namespace. The spec already lists them after the platform's own.
    placements: Mapping[str, Placement] = field(default_factory=dict)

    def namespace_of(self, service: str) -> str:
        """Where a service's objects live: its team's namespace, or the platform's."""
        placement = self.placements.get(service)
        return placement.namespace if placement is not None else self.namespace

    def own_services(self) -> list[EffectiveService]:
        """The platform's own services, without the attached ones."""
        return [s for s in self.services if s.name not in self.placements]

    @cached_property
    def services(self) -> list[EffectiveService]:
        return effective_services(self.spec)

    def service(self, name: str) -> EffectiveService:
        return next(s for s in self.services if s.name == name)

    @property
    def gateway_service(self) -> EffectiveService | None:
        gw = self.spec.gateway
        return self.service(gw.service) if gw and gw.service else None

    def service_url(self, name: str) -> str:
        svc = self.service(name)
        return f"http://{svc.name}.{self.namespace_of(name)}.svc:{svc.port}"

    @property
    def kafka_bootstrap(self) -> str | None:
        kafka = self.spec.kafka
        return kafka.bootstrapServers if kafka and kafka.bootstrapServers else None
