"""The workers: a reconcile pass that hangs is cut at its deadline and retried; the other
platforms keep being reconciled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from keelson.controller import handlers
from keelson.controller.queue import WorkQueue
from keelson.controller.reconciler import Outcome


class Reconciler:
    def __init__(self) -> None:
        self.done: list[str] = []
        self.all_ok = asyncio.Event()

    async def reconcile(self, platform: dict[str, Any]) -> Outcome:
        name = platform["metadata"]["name"]
        if name.startswith("hung"):
            await asyncio.Event().wait()  # a server that never answers, at any depth
        self.done.append(name)
        if sorted(self.done) == ["ok-1", "ok-2"]:
            self.all_ok.set()
        return Outcome(ready=True)


async def test_a_hung_pass_is_cut_at_the_deadline_and_does_not_pin_the_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handlers, "PASS_DEADLINE_SECONDS", 0.2)
    controller = handlers.Controller()
    controller.queue = WorkQueue(backoffs=[3600])
    reconciler = Reconciler()
    controller.reconciler = reconciler  # type: ignore[assignment]
    names = ["hung-1", "hung-2", "ok-1", "ok-2"]
    controller.platforms = {("ns", n): [{"metadata": {"name": n, "namespace": "ns"}}] for n in names}
    workers = [asyncio.create_task(controller._worker(i)) for i in range(2)]  # fewer than the hung
    try:
        for n in names:
            controller.queue.add(("ns", n))
        async with asyncio.timeout(2):
            await reconciler.all_ok.wait()
        assert controller.queue._failures == {("ns", "hung-1"): 1, ("ns", "hung-2"): 1}  # retried later
        assert all(not w.done() for w in workers)
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


class Elector:
    """Leadership on demand: `acquire` returns when granted, `hold` when revoked."""

    def __init__(self) -> None:
        self.granted, self.revoked = asyncio.Event(), asyncio.Event()
        self.leading = False

    async def acquire(self) -> None:
        await self.granted.wait()
        self.leading = True

    async def hold(self) -> None:
        await self.revoked.wait()
        self.leading = False

    def valid(self) -> bool:
        return self.leading


async def test_only_the_leader_reconciles_it_catches_up_on_every_platform_and_stops_when_leadership_ends() -> None:
    controller = handlers.Controller()
    reconciler = Reconciler()
    controller.reconciler = reconciler  # type: ignore[assignment]
    elector = Elector()
    controller.elector = elector  # type: ignore[assignment]
    controller.platforms = {("ns", n): [{"metadata": {"name": n, "namespace": "ns"}}] for n in ("ok-1", "ok-2")}
    lead = asyncio.create_task(controller._lead())
    try:
        for _ in range(5):
            await asyncio.sleep(0)
        assert not controller.writing and reconciler.done == []  # a standby: no worker runs
        elector.granted.set()
        async with asyncio.timeout(2):
            await reconciler.all_ok.wait()  # every known platform, queued once on taking over
        assert controller.writing
        elector.revoked.set()
        async with asyncio.timeout(2):
            await controller.lost.wait()  # main ends the process on this
        assert not controller.writing
        assert all(t.done() for t in controller.tasks)  # the workers and the resync are gone
    finally:
        lead.cancel()
        await asyncio.gather(lead, return_exceptions=True)
