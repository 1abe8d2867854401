"""Is the installed MicroservicePlatform CRD the one this operator was built for?

Helm installs a chart's crds/ once and never upgrades them, and a user may manage the CRD by hand
(`crds.enabled=false`): an operator can then run against an older schema, whose API server prunes
the fields it does not know, silently. The generator stamps a digest of the CRD's spec on it
(`keelson.dev/schema-digest`, api/crd.py); the operator compares it with its own at start and on
every resync, logs the difference once per change, and reports it on every platform in condition
`CRDCurrent` (present only while they differ; outside Ready, since platforms whose fields the old
schema knows still converge).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from keelson.api.crd import CRD_NAME, SCHEMA_DIGEST_ANNOTATION, custom_resource_definition
from keelson.controller.conditions import ConditionState

log = logging.getLogger("keelson.operator")

CRD_CURRENT = "CRDCurrent"
MISMATCH_REASON = "CRDSchemaMismatch"


class CrdReader(Protocol):
    async def get_crd(self, name: str) -> dict[str, Any] | None: ...


def expected_digest() -> str:
    return str(custom_resource_definition()["metadata"]["annotations"][SCHEMA_DIGEST_ANNOTATION])


def compare(live: dict[str, Any] | None, expected: str) -> ConditionState | None:
    """None when the installed CRD is the expected one; otherwise the condition saying how not. Pure."""
    if live is None:
        installed = "no CRD is installed"
    else:
        digest = (live.get("metadata", {}).get("annotations") or {}).get(SCHEMA_DIGEST_ANNOTATION)
        if digest == expected:
            return None
        installed = f"it carries {digest}" if digest else f"it carries no {SCHEMA_DIGEST_ANNOTATION} (an older Keelson)"
    return ConditionState(
        CRD_CURRENT,
        "False",
        MISMATCH_REASON,
        f"the installed CRD {CRD_NAME} is not the one this operator was built for ({expected}): {installed}; "
        "fields it does not know are pruned. Upgrade it: helm upgrade with crds.enabled=true (the default), or "
        "kubectl apply --server-side -f crds/",
    )


class CrdCheck:
    """The last comparison, and a log line whenever its outcome changes."""

    def __init__(self, reader: CrdReader, expected: str | None = None) -> None:
        self.reader = reader
        self.expected = expected or expected_digest()
        self.condition: ConditionState | None = None
        self._checked = False

    async def run(self) -> ConditionState | None:
        try:
            live = await self.reader.get_crd(CRD_NAME)
        except Exception as exc:  # a failed read says nothing about the schema: keep the last outcome
            log.warning("could not read CRD %s to check its schema: %s", CRD_NAME, exc)
            return self.condition
        condition = compare(live, self.expected)
        if not self._checked or condition != self.condition:
            if condition is None:
                log.info("installed CRD %s matches this operator (%s)", CRD_NAME, self.expected)
            else:
                log.error("%s", condition.message)
        self.condition, self._checked = condition, True
        return condition
