import asyncio

from keelson.controller.queue import WorkQueue


async def test_duplicate_adds_collapse() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"


async def test_add_while_active_runs_again_after_done() -> None:
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")  # an event arrives during the reconcile
    assert len(q) == 0  # never two workers on one key
    q.done(key)
    assert len(q) == 1 and await q.get() == "a"


async def test_retry_backs_off_exponentially_and_forget_resets() -> None:
    q2 = WorkQueue(backoffs=(1.0, 2.0, 4.0))
    delays = []
    for _ in range(4):
        delays.append(q2.retry("k"))
        q2._timers.pop("k").cancel()  # let the next retry schedule
    assert delays == [1.0, 2.0, 4.0, 4.0]
    q2.forget("k")
    assert q2.retry("k") == 1.0
    q2._timers.pop("k").cancel()


async def test_add_after_fires() -> None:
    q = WorkQueue()
    q.add_after("z", 0.0)
    assert await asyncio.wait_for(q.get(), timeout=2) == "z"
