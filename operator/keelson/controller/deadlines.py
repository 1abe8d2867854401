"""Deadlines for work that talks to servers Keelson does not control.

`asyncio.wait_for` waits for the cancelled work to unwind, and a client's unwinding can itself
wait on the server (psycopg sends a cancel request and waits up to 10 s for it on a cancelled
query). `within` returns at the deadline and lets the cancelled work unwind in the background,
so a deadline is a deadline for the reconcile pass; the unwinding is bounded by the client's
own timeouts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("keelson.deadlines")

# Work cancelled at its deadline and still unwinding: held so it is not garbage-collected.
_unwinding: set[asyncio.Task[Any]] = set()


def _unwound(task: asyncio.Task[Any]) -> None:
    _unwinding.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("work abandoned at its deadline ended with %r", task.exception())


async def within(work: Coroutine[Any, Any, None], seconds: float) -> bool:
    """Run `work`; True if it finished within `seconds`, False if it was abandoned (cancelled).
    Its exceptions propagate as if it had been awaited."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if done:
        task.result()  # re-raises what the work raised
        return True
    task.cancel()
    _unwinding.add(task)
    task.add_done_callback(_unwound)
    return False
