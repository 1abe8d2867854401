"""Liveness and readiness.

`/healthz` says the process serves requests at all (Kubernetes restarts it otherwise), so it
checks nothing else: a database outage must not restart every replica. `/readyz` runs the
service's readiness checks (its database, ...) and takes the replica out of its Service while any
fails, each check bounded by a timeout so a hung dependency reads as not ready, not as a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

ReadinessCheck = Callable[[], Awaitable[None]]  # raises when not ready


@dataclass
class Readiness:
    timeout_seconds: float = 2.0
    checks: dict[str, ReadinessCheck] = field(default_factory=dict)
    started: bool = False  # set once start-up (migrations, ...) has finished

    def add(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

    async def run(self) -> dict[str, str]:
        """`ok` or the failure, per check; `startup` first while start-up has not finished."""
        if not self.started:
            return {"startup": "in progress"}
        names = list(self.checks)
        results = await asyncio.gather(*(self._one(self.checks[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def _one(self, check: ReadinessCheck) -> str:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                await check()
        except TimeoutError:
            return f"timed out after {self.timeout_seconds:g} s"
        except Exception as err:
            return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        return "ok"
