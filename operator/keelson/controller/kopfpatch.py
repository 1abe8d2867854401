"""A watched CRD deleted while the operator runs must not end the operator.

kopf 1.38 treats a 404 on a watch stream as fatal: when an optional kind's CRD (the Prometheus
Operator's, the Gateway API's, Strimzi's, CloudNativePG's) is deleted, its watcher gets
`404 page not found` before kopf's own CRD observer has stopped it, and the whole operator exits
("Multidimensional multitasker has failed"). Seen in our cluster tests when a module removed the
CRDs it had installed; on a cluster, uninstalling the Prometheus Operator would do the same.

The patch ends such a stream quietly instead, after a pause: kopf's observer, which sees the CRD
go, then cancels the watcher, and if the CRD comes back the watch resumes (with `rescanning`,
which makes sure kopf notices). It wraps one private function of kopf, as `rescanning` already
depends on kopf's private modules; a kopf upgrade must re-check both (tests/unit/test_kopfpatch.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from kopf._cogs.clients import errors, watching

log = logging.getLogger("keelson.operator")

# How long a stream whose kind is gone waits before kopf may try it again (it reconnects at once).
GONE_BACKOFF_SECONDS = 5.0

_original = watching.continuous_watch


async def tolerant_continuous_watch(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
    try:
        async for event in _original(*args, **kwargs):
            yield event
    except errors.APINotFoundError:
        log.warning("the watched kind %s is no longer served (its CRD was deleted?)", kwargs.get("resource"))
        await asyncio.sleep(GONE_BACKOFF_SECONDS)


def install() -> None:
    """Idempotent: kopf's `infinite_watch` looks `continuous_watch` up in its module at each call."""
    watching.continuous_watch = tolerant_continuous_watch
