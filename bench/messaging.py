"""bench/messaging: consumer throughput (messages/s on one core) through the library's retrying
consumer with 0 % and 1 % poison messages, next to a bare aiokafka consumer loop on the same
topic, in one run.

    python bench/messaging.py [--messages 200000] [--rounds 3] [--bootstrap HOST:PORT] [--state-dir DIR]

The brokers are `--bootstrap`, else $KEELSON_KAFKA_BOOTSTRAP, else the local stack's Kafka
(started in --state-dir if needed). The process pins itself to one CPU.

What each loop does per message, so that the comparison is fair:
- bare: `getmany` (500 records at most), `json.loads` the value, call the handler with the dict,
  commit after a batch at most every 0.25 s (the library's default) and at the end. No envelope
  checks, no retries, no metrics, no trace context.
- library: `RetryingConsumer.poll` as a service runs it: envelope parsed and checked, the trace
  context made current, the handler called and timed, metrics, failures forwarded to `retry-1`
  (acknowledged before the commit), the subscription's retry topics read as well.
The handler is the same trivial one (remember the event id; raise for a poison message). The
clock runs from the first message handled until every message of the main topic was handled or
forwarded and the last offset committed; retries that fall due later are not in that window.
A poison message is poison on every attempt: after the 1 % run the benchmark keeps the consumer
going until all of them are in the DLQ, and checks that they are.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keelson.topics import Subscription  # noqa: E402
from keelson_services.messaging import Envelope, RetryingConsumer, TraceContext  # noqa: E402
from keelson_services.messaging.dlq import dlq_depths  # noqa: E402
from keelson_services.messaging.envelope import new_envelope  # noqa: E402
from keelson_services.messaging.schedule import subscription  # noqa: E402

BATCH = 500
COMMIT_INTERVAL = 0.25  # RetryingConsumer's default commit_interval_seconds
SERVICE = "bench"


class Poison(Exception):
    pass


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def pin_to_one_core() -> str:
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[-1]})
    return f"CPU {cores[-1]} of {len(cores)}"


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
        while True:
            described = await admin.describe_topics(names)
            if all(not t["error_code"] and all(p["leader"] >= 0 for p in t["partitions"]) for t in described):
                return
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def fill(bootstrap: str, topic: str, messages: int, poison_every: int | None) -> int:
    """Write `messages` envelopes the way EventProducer does; every `poison_every`-th is poison."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20)
    await producer.start()
    poison = 0
    try:
        deliveries = []
        now = datetime.now(UTC)
        for i in range(messages):
            bad = poison_every is not None and i % poison_every == poison_every // 2
            poison += bad
            data = {"orderId": f"o-{i}", "customerId": f"c-{i % 997}", "total": 12.5, "poison": bad}
            event = new_envelope(topic, data, source="orders", time=now)
            headers = [("traceparent", TraceContext.new().header().encode())]
            deliveries.append(await producer.send(topic, event.to_json(), key=f"o-{i}".encode(), headers=headers))
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()
    return poison


Rate = tuple[float, float]  # messages per wall-clock second, per second of this process's CPU time


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def rates(messages: int, started: tuple[float, float]) -> Rate:
    wall, cpu = clocks()
    return messages / (wall - started[0]), messages / (cpu - started[1])


async def run_bare(bootstrap: str, topic: str, messages: int) -> Rate:
    seen: set[str] = set()

    async def handle(event: dict[str, Any]) -> None:  # what the library's handler does, but raise
        seen.add(event["id"])
        if event["data"]["poison"]:
            pass  # no retries here: the bare loop only ever reads the clean topic

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bare-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        started = None
        last_commit = 0.0
        while len(seen) < messages:
            batch = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
            if batch and started is None:
                started = clocks()
            for records in batch.values():
                for record in records:
                    await handle(json.loads(record.value))
            if batch and time.monotonic() - last_commit >= COMMIT_INTERVAL:
                await consumer.commit()
                last_commit = time.monotonic()
        await consumer.commit()
        assert started is not None
        return rates(messages, started)
    finally:
        await consumer.stop()


async def dead_lettered(bootstrap: str, dlq: str, partitions: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        return (await dlq_depths(consumer, {dlq: partitions}))[dlq]
    finally:
        await consumer.stop()


async def run_library(
    bootstrap: str, sub: Subscription, messages: int, *, partitions: int, until_dead: int | None = None
) -> tuple[Rate, str]:
    first_seen: set[str] = set()
    started: list[tuple[float, float]] = []
    poison_calls = 0

    async def handle(event: Envelope) -> None:
        nonlocal poison_calls
        if not started:
            started.append(clocks())
        first_seen.add(event.id)
        if event.data["poison"]:
            poison_calls += 1
            raise Poison(event.id)

    consumer = RetryingConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"{sub.service}-{uuid.uuid4().hex[:8]}",
        service=sub.service,
        subscriptions=[sub],
        handlers={sub.topic: handle},
        max_records=BATCH,
        dlq_depth_seconds=3600,
    )
    await consumer.start()
    try:
        while len(first_seen) < messages:
            await consumer.poll()
        await consumer.flush()  # the last commit, as the bare loop's
        rate = rates(messages, started[0])
        note = ""
        if until_dead:
            # Every poison message is tried 1 + 3 times, then dead-lettered.
            deadline = time.monotonic() + 60
            while poison_calls < until_dead * (1 + len(sub.retry_topics)) and time.monotonic() < deadline:
                await consumer.poll()
            await consumer.flush()  # the last ones on their way to the DLQ
            depth = await dead_lettered(bootstrap, sub.dlq, partitions)
            note = f"{depth} of {until_dead} poison messages in the DLQ after {poison_calls} handler calls"
        return rate, note
    finally:
        await consumer.stop()


def stack_bootstrap(state_dir: Path) -> str:
    from keelson.devstack.stack import LocalStack

    stack = LocalStack(state_dir)
    stack.up(kafka=True, postgres=False, operator=False, progress=lambda m: print(f"# {m}", file=sys.stderr))
    return str(stack.kafka_bootstrap)


async def bench(args: argparse.Namespace, bootstrap: str) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    clean, poisoned = f"bench{tag}.order.clean", f"bench{tag}.order.poisoned"
    topics = [clean, poisoned]
    await create_topics(bootstrap, topics, args.partitions)

    async def subscriber(topic: str, n: int) -> Subscription:
        """A subscription of its own per run, so that no run sees another's retries."""
        sub = subscription(topic, f"run{n}", backoff_seconds=(1, 2, 4, 8), max_retries=3)
        topics.extend([*sub.retry_topics, sub.dlq])
        await create_topics(bootstrap, [*sub.retry_topics, sub.dlq], args.partitions)
        return sub

    try:
        await fill(bootstrap, clean, args.messages, None)
        poison = await fill(bootstrap, poisoned, args.messages, 100)
        runs: dict[str, list[Rate]] = {"bare": [], "library": [], "library_poison": []}
        note = ""
        for n in range(args.rounds):
            last = n == args.rounds - 1
            runs["bare"].append(await run_bare(bootstrap, clean, args.messages))
            sub = await subscriber(clean, 2 * n)
            runs["library"].append((await run_library(bootstrap, sub, args.messages, partitions=args.partitions))[0])
            sub = await subscriber(poisoned, 2 * n + 1)
            rate, checked = await run_library(
                bootstrap, sub, args.messages, partitions=args.partitions, until_dead=poison if last else None
            )
            runs["library_poison"].append(rate)
            note = checked or note
            done = ", ".join(f"{k} {v[-1][0]:,.0f}/s ({v[-1][1]:,.0f}/CPU-s)" for k, v in runs.items())
            print(f"# round {n + 1}: {done}", file=sys.stderr)
        return {"runs": runs, "poison": poison, "note": note}
    finally:
        await delete_topics(bootstrap, topics)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000, help="messages per topic")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="each loop runs this many times")
    parser.add_argument("--bootstrap", default=os.environ.get("KEELSON_KAFKA_BOOTSTRAP"))
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("KEELSON_BENCH_STATE_DIR", Path.home() / ".local/state/keelson/bench")),
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    core = pin_to_one_core()
    bootstrap = args.bootstrap or stack_bootstrap(args.state_dir)
    result = asyncio.run(bench(args, bootstrap))
    runs = result["runs"]
    # Other load on the machine only ever slows a run down: the best of the rounds is the figure,
    # the median beside it. CPU time (messages per second of the consumer's own CPU) is what one
    # core delivers when the consumer has it to itself, and hardly moves with the machine's load.
    best = {k: max(r[0] for r in v) for k, v in runs.items()}
    median = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
    cpu = {k: max(r[1] for r in v) for k, v in runs.items()}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"messaging benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {cpu_model()}, "
        f"{os.cpu_count()} cores (the consumer pinned to {core}), load average {load}, "
        f"Python {platform.python_version()}, aiokafka {aiokafka.__version__}; {args.messages:,} messages of "
        f"~300 bytes on {args.partitions} partitions per run, {args.rounds} rounds"
    )
    print()
    print("| consumer | poison | msg/s, best | msg/s, median | msg per CPU-second | ratio (wall, CPU) | target |")
    print("| --- | ---: | ---: | ---: | ---: | --- | --- |")

    def row(name: str, key: str, poison: str, *, base: str | None, target: float | None, what: str) -> None:
        ratio, verdict = "1.00", ""
        if base:
            wall_ratio, cpu_ratio = best[key] / best[base], cpu[key] / cpu[base]
            ratio = f"{wall_ratio:.2f}, {cpu_ratio:.2f} of {what}"
            met = [("met" if r >= (target or 0) else "MISSED") for r in (wall_ratio, cpu_ratio)]
            verdict = f">= {target:.2f} of {what}: {met[0]} (wall), {met[1]} (CPU)"
        print(f"| {name} | {poison} | {best[key]:,.0f} | {median[key]:,.0f} | {cpu[key]:,.0f} | {ratio} | {verdict} |")

    row("bare aiokafka loop", "bare", "0 %", base=None, target=None, what="")
    row("RetryingConsumer", "library", "0 %", base="bare", target=0.8, what="bare")
    row("RetryingConsumer", "library_poison", f"1 % ({result['poison']:,})", base="library", target=0.9, what="0 %")
    print()
    if result["note"]:
        print(f"Check: {result['note']}.")
    print()
    print(json.dumps(result["runs"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
