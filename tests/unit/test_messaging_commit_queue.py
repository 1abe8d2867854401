import asyncio

import pytest

from keelson_services.messaging.commit_queue import CommitQueue, ForwardFailed


async def test_offsets_wait_for_the_forwards_of_their_batch_and_of_every_batch_before() -> None:
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    queue: CommitQueue[str] = CommitQueue()
    queue.add({"p0": 10}, {"p0": 0}, [first])
    queue.add({"p0": 20, "p1": 5}, {"p0": 10, "p1": 0}, [second])
    queue.add({"p1": 9}, {"p1": 5}, [])
    assert queue.settled() == {}  # nothing: the oldest batch waits for its forward
    second.set_result(None)
    assert queue.settled() == {} and len(queue) == 3  # still in batch order
    first.set_result(None)
    assert queue.settled() == {"p0": 20, "p1": 9} and len(queue) == 0


async def test_a_failed_forward_commits_nothing_from_its_batch_on() -> None:
    loop = asyncio.get_running_loop()
    ok, failed = loop.create_future(), loop.create_future()
    queue: CommitQueue[str] = CommitQueue()
    queue.add({"p0": 10}, {"p0": 0}, [ok])
    queue.add({"p0": 20, "p1": 5}, {"p0": 10, "p1": 0}, [failed])
    queue.add({"p0": 30}, {"p0": 20}, [])
    ok.set_result(None)
    failed.set_exception(TimeoutError("no brokers"))
    with pytest.raises(ForwardFailed) as raised:
        queue.settled()
    assert raised.value.rewind == {"p0": 10, "p1": 0}  # read again from the first offset not committed
    assert len(queue) == 0


async def test_dropping_gives_where_to_read_again() -> None:
    queue: CommitQueue[str] = CommitQueue()
    queue.add({"p0": 10}, {"p0": 4}, [])
    queue.add({"p0": 20}, {"p0": 10}, [])
    assert queue.drop() == {"p0": 4} and len(queue) == 0
