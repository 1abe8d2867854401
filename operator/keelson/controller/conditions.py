"""Status conditions in the `metav1.Condition` shape. Pure: the clock is passed in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConditionState:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


def merge_conditions(
    previous: list[dict[str, Any]] | None,
    current: list[ConditionState],
    *,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """New conditions, keeping `lastTransitionTime` where the status did not change, so that an
    unchanged platform produces a byte-identical status (and no write)."""
    before = {c["type"]: c for c in previous or []}
    merged = []
    for cond in current:
        old = before.get(cond.type)
        since = old["lastTransitionTime"] if old and old.get("status") == cond.status else now
        merged.append(
            {
                "type": cond.type,
                "status": cond.status,
                "observedGeneration": generation,
                "lastTransitionTime": since,
                "reason": cond.reason,
                "message": cond.message,
            }
        )
    return merged


def transitions(previous: list[dict[str, Any]] | None, current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conditions whose status or reason changed: what deserves a Kubernetes Event."""
    before = {c["type"]: (c.get("status"), c.get("reason")) for c in previous or []}
    return [c for c in current if before.get(c["type"]) != (c["status"], c["reason"])]
