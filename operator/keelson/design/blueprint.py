"""What a system is made of, as data: the input of a design.

A blueprint names the core services with their responsibilities, boundaries, databases, calls and
events, and says why. It carries no numbers: replicas, bounds and partitions come from the sizing
model for the load at hand. The catalogue (`systems/*.yaml`) holds one per system type; a user's
own (`keelson design --services FILE`) has the same shape.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keelson.api.v1alpha1 import DOMAIN_PATTERN, EVENT_PATTERN

GATEWAY = "gateway"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseChoice(_Model):
    """The service's own database, and why this technology suits what it stores."""

    engine: Literal["postgres"] = Field(description="What Keelson provisions: PostgreSQL, one database per service.")
    stores: str = Field(description="What lives in it.")
    justification: str = Field(description="Why this technology fits the access pattern.")


class ServiceBlueprint(_Model):
    """One core service."""

    name: str = Field(pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length=40)
    reference: Literal["users", "orders", "payments", "notifications"] | None = Field(
        None, description="A bundled reference service that does exactly this job; else a custom image."
    )
    responsibility: str
    boundary: str = Field(description="What it owns, and what it deliberately leaves to others.")
    expose: str | None = Field(None, pattern=r"^/[a-z0-9/_-]*$", description="Public path prefix at the gateway.")
    database: DatabaseChoice | None = None
    stateless: str | None = Field(None, description="Why it needs no database, when it has none.")
    calls: dict[str, str] = Field(default_factory=dict, description="Callee -> why, synchronous.")
    publishes: dict[str, str] = Field(default_factory=dict, description="entity.action -> when.")
    subscribes: dict[str, str] = Field(default_factory=dict, description="entity.action -> what it does then.")

    @model_validator(mode="after")
    def _state(self) -> ServiceBlueprint:
        if (self.database is None) == (self.stateless is None):
            raise ValueError(f"{self.name}: give exactly one of database or stateless (why it needs none)")
        for event in (*self.publishes, *self.subscribes):
            if not re.fullmatch(EVENT_PATTERN, event):
                raise ValueError(f"{self.name}: {event!r} is not an event (entity.action)")
        return self


class Blueprint(_Model):
    """A system type: its services and the reasoning behind them."""

    system: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    title: str
    domain: str = Field(pattern=DOMAIN_PATTERN, max_length=40)
    overview: str
    why_microservices: list[str] = Field(min_length=1)
    services: list[ServiceBlueprint] = Field(min_length=1, max_length=12)
    roles: dict[str, str] = Field(description="Role -> what it may do; enforced by the services.")

    @model_validator(mode="after")
    def _graph(self) -> Blueprint:
        names = [s.name for s in self.services]
        if GATEWAY in names:
            raise ValueError(f"{GATEWAY!r} is added by the design itself (the edge of every platform)")
        if len(set(names)) != len(names):
            raise ValueError("service names must be unique")
        for svc in self.services:
            for callee in svc.calls:
                if callee not in names or callee == svc.name:
                    raise ValueError(f"{svc.name}.calls: {callee!r} is not another service of the blueprint")
        published = {e for s in self.services for e in s.publishes}
        for svc in self.services:
            for event in svc.subscribes:
                if event not in published:
                    raise ValueError(f"{svc.name}.subscribes: no service publishes {event!r}")
        return self
