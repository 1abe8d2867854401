"""Whether a Deployment is rolled out and available, read from its status. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeploymentReadiness:
    desired: int
    ready: int
    rolled_out: bool

    @property
    def available(self) -> bool:
        return self.rolled_out and self.ready >= self.desired


def deployment_readiness(live: dict[str, Any] | None, *, floor: int = 0) -> DeploymentReadiness:
    """The test `kubectl rollout status` makes, with at least `floor` replicas desired."""
    if live is None:
        return DeploymentReadiness(desired=0, ready=0, rolled_out=False)
    spec = live.get("spec", {})
    status = live.get("status", {})
    desired = max(int(spec.get("replicas", 1)), floor)
    observed = status.get("observedGeneration", 0) >= live.get("metadata", {}).get("generation", 0)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    rolled_out = observed and updated >= desired and total <= updated and available >= desired
    return DeploymentReadiness(desired=desired, ready=int(status.get("readyReplicas", 0)), rolled_out=rolled_out)
