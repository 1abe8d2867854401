"""Areas: the parts of a platform that live outside Kubernetes objects (Kafka topics, databases).

Each area reconciles its own external system and reports one condition and a status fragment.
Areas run before the Kubernetes children are rendered, because they can feed the rendering (a
rotated database password rolls the service's pods through a pod-template annotation). An area's
failure never stops the others or the workloads: it is reported in its condition and retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.controller.conditions import ConditionState


@dataclass(frozen=True)
class PlatformEvent:
    """A Kubernetes Event to post on the platform."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class AreaResult:
    condition: ConditionState
    status: dict[str, Any] = field(default_factory=dict)  # merged into the platform's status
    pod_annotations: dict[str, dict[str, str]] = field(default_factory=dict)  # per service
    # Extra desired children the area computed (e.g. credential Secrets): applied, drift-repaired
    # and pruned exactly like rendered ones.
    objects: list[dict[str, Any]] = field(default_factory=list)
    events: list[PlatformEvent] = field(default_factory=list)
    retry: bool = False  # transient failure: reconcile again with backoff
    errors: list[str] = field(default_factory=list)
    done: bool = True  # for cleanup: whether the finalizer may go


class Area(Protocol):
    condition_type: str
    status_key: str  # the status field the area owns, e.g. "topics"

    def needs_cleanup(self, model: MicroservicePlatform) -> bool:
        """Whether deleting the platform must first clean up outside Kubernetes (a finalizer)."""
        ...

    async def reconcile(self, platform: dict[str, Any], model: MicroservicePlatform) -> AreaResult: ...

    async def cleanup(self, platform: dict[str, Any], model: MicroservicePlatform) -> AreaResult: ...
