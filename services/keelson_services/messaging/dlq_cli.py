"""`keelson dlq list|show|replay`: inspect a subscription's DLQ and re-drive its messages."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from keelson.kafkaclient import KafkaSecurity
from keelson_services.messaging.schedule import parse_dlq

if TYPE_CHECKING:  # the Kafka client is imported when a command runs, not whenever `keelson` starts
    from keelson_services.messaging.dlq import DeadLetter

BOOTSTRAP_ENV = "KEELSON_KAFKA_BOOTSTRAP"


class UsageError(Exception):
    pass


def add_dlq_commands(sub: Any) -> None:
    """Register `keelson dlq` on the main CLI's subparsers."""
    dlq = sub.add_parser("dlq", help="inspect and replay the dead-letter queues of subscriptions")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--bootstrap-server",
            default=os.environ.get(BOOTSTRAP_ENV),
            help=f"host:port of the brokers (default: ${BOOTSTRAP_ENV})",
        )
        parser.add_argument("--json", action="store_true", help="print JSON instead of text")

    ls = dlq_sub.add_parser("list", help="the DLQs and how many messages each holds")
    common(ls)
    ls.add_argument("-f", "--filename", help="only the subscriptions of this platform manifest (else every DLQ)")
    ls.set_defaults(func=lambda args: _run(_list, args))

    show = dlq_sub.add_parser("show", help="the messages of one DLQ, with where and why they failed")
    common(show)
    show.add_argument("dlq", help="the DLQ topic, <topic>.<service>.dlq")
    show.add_argument("--offset", action="append", default=[], metavar="[PARTITION:]OFFSET", help="only these")
    show.set_defaults(func=lambda args: _run(_show, args))

    replay = dlq_sub.add_parser("replay", help="send DLQ messages back to their original topic, for that subscriber")
    common(replay)
    replay.add_argument("dlq", help="the DLQ topic, <topic>.<service>.dlq")
    chosen = replay.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--offset", action="append", default=[], metavar="[PARTITION:]OFFSET", help="repeatable")
    chosen.add_argument("--all", action="store_true", help="every message in the DLQ")
    replay.add_argument("--dry-run", action="store_true", help="print what would be replayed, send nothing")
    replay.set_defaults(func=lambda args: _run(_replay, args))


def _run(command: Any, args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError

    if not args.bootstrap_server:
        print(f"error: no brokers: pass --bootstrap-server or set {BOOTSTRAP_ENV}", file=sys.stderr)
        return 2
    try:
        if getattr(args, "dlq", None):
            parse_dlq(args.dlq)
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its connection errors are reported below
        return int(asyncio.run(command(args)))
    except (UsageError, ValueError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (KafkaError, TimeoutError) as exc:
        reason = exc or type(exc).__name__
        print(f"error: cannot reach the brokers at {args.bootstrap_server}: {reason}", file=sys.stderr)
        return 1


def parse_offsets(values: list[str], partitions: int) -> set[tuple[int, int]]:
    """`PARTITION:OFFSET`, or a bare `OFFSET` when the DLQ has a single partition."""
    chosen = set()
    for value in values:
        part, _, off = value.rpartition(":")
        if not off.isdigit() or (part and not part.isdigit()):
            raise UsageError(f"bad offset {value!r}: give PARTITION:OFFSET, e.g. 0:17")
        if not part and partitions != 1:
            raise UsageError(f"the DLQ has {partitions} partitions: give PARTITION:OFFSET for {value!r}")
        chosen.add((int(part or 0), int(off)))
    return chosen


def _select(letters: list[DeadLetter], values: list[str], partitions: int) -> list[DeadLetter]:
    if not values:
        return letters
    chosen = parse_offsets(values, partitions)
    found = [letter for letter in letters if (letter.partition, letter.offset) in chosen]
    missing = chosen - {(letter.partition, letter.offset) for letter in found}
    if missing:
        raise UsageError(f"no message at {', '.join(f'{p}:{o}' for p, o in sorted(missing))}")
    return found


async def _list(args: argparse.Namespace) -> int:
    from keelson_services.messaging.dlq import DeadLetters

    async with DeadLetters(args.bootstrap_server, KafkaSecurity.from_env(os.environ)) as dead:
        if args.filename:
            from keelson.manifests import load_platforms
            from keelson.topics import subscriptions

            dlqs = [s.dlq for p in load_platforms(args.filename) for s in subscriptions(p.spec)]
        else:
            dlqs = await dead.all_dlqs()
        depths = await dead.depths(dlqs)
    rows = [{"dlq": d, "service": parse_dlq(d)[1], "exists": d in depths, "messages": depths.get(d)} for d in dlqs]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max([len(str(r["dlq"])) for r in rows] + [3])
    print(f"{'DLQ':<{width}}  {'MESSAGES':>8}  SERVICE")
    for r in rows:
        count = r["messages"] if r["exists"] else "missing"
        print(f"{r['dlq']:<{width}}  {count!s:>8}  {r['service']}")
    return 0


async def _show(args: argparse.Namespace) -> int:
    from keelson_services.messaging.dlq import DeadLetters

    async with DeadLetters(args.bootstrap_server, KafkaSecurity.from_env(os.environ)) as dead:
        letters = await dead.read(args.dlq)
        partitions = (await dead.partitions([args.dlq]))[args.dlq]
    shown = [letter.summary() for letter in _select(letters, args.offset, partitions)]
    if args.json:
        print(json.dumps(shown, indent=2))
        return 0
    if not shown:
        print(f"{args.dlq} is empty")
    for s in shown:
        when = datetime.fromtimestamp(s["timestamp_ms"] / 1000, UTC).isoformat(timespec="seconds")
        print(f"{s['partition']}:{s['offset']}  {when}  event {s['event_id'] or '?'}  key {s['key']}")
        origin = f"{s['original_topic']}/{s['original_partition']}@{s['original_offset']}"
        print(f"  from {origin}  attempts {s['attempts']}  traceparent {s['traceparent'] or '-'}")
        print(f"  error: {s['error']}")
        print(f"  value: {s['value'][:500]}")
    return 0


async def _replay(args: argparse.Namespace) -> int:
    from keelson_services.messaging.dlq import DeadLetters

    async with DeadLetters(args.bootstrap_server, KafkaSecurity.from_env(os.environ)) as dead:
        letters = await dead.read(args.dlq)
        partitions = (await dead.partitions([args.dlq]))[args.dlq]
        chosen = _select(letters, [] if args.all else args.offset, partitions)
        if not args.dry_run:
            await dead.replay(chosen)
    verb = "would replay" if args.dry_run else "replayed"
    rows = [{"partition": c.partition, "offset": c.offset, "to": c.original_topic, "for": c.service} for c in chosen]
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "messages": rows}, indent=2))
    else:
        for r in rows:
            print(f"{verb} {r['partition']}:{r['offset']} -> {r['to']} (for {r['for']})")
        print(f"{verb} {len(rows)} message(s) from {args.dlq}")
    return 0
