"""Reading and re-driving dead letters: what `keelson dlq` and the DLQ depth metric use.

A replayed message goes back to its original topic with its key, value and trace context, and a
`keelson-replay-for` header naming the subscriber whose DLQ it came from: the other subscribers
of that topic skip it, so a replay never re-runs their handlers. The DLQ itself keeps the message
(topics are logs; retention decides when it goes).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from keelson.kafkaclient import PLAINTEXT, KafkaSecurity
from keelson_services.messaging import headers
from keelson_services.messaging.producer import EventProducer
from keelson_services.messaging.schedule import parse_dlq
from keelson_services.observability import tracing

DEADLINE_SECONDS = 15.0


@dataclass(frozen=True)
class DeadLetter:
    dlq: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def original_topic(self) -> str:
        return headers.text(self.headers, headers.ORIGINAL_TOPIC) or parse_dlq(self.dlq)[0]

    @property
    def service(self) -> str:
        return parse_dlq(self.dlq)[1]

    def summary(self) -> dict[str, Any]:
        """Everything `keelson dlq show` prints, as JSON-ready values."""
        h = self.headers
        event: dict[str, Any] = {}
        try:
            doc = json.loads(self.value or b"")
            event = doc if isinstance(doc, dict) else {}
        except ValueError:
            pass
        return {
            "dlq": self.dlq,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "event_id": event.get("id"),
            "event_type": event.get("type"),
            "original_topic": self.original_topic,
            "original_partition": _int(headers.text(h, headers.ORIGINAL_PARTITION)),
            "original_offset": _int(headers.text(h, headers.ORIGINAL_OFFSET)),
            "attempts": _int(headers.text(h, headers.ATTEMPTS)),
            "error": headers.text(h, headers.ERROR),
            "traceparent": headers.text(h, tracing.HEADER),
            "value": (self.value or b"").decode("utf-8", "replace"),
        }


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


async def dlq_depths(consumer: AIOKafkaConsumer, partitions: Mapping[str, int]) -> dict[str, int]:
    """Messages retained per DLQ, given each DLQ's partition count; any consumer will do."""
    tps = [TopicPartition(dlq, p) for dlq, count in partitions.items() for p in range(count)]
    if not tps:
        return {}
    end = await consumer.end_offsets(tps)
    start = await consumer.beginning_offsets(tps)
    depths = dict.fromkeys(partitions, 0)
    for tp in tps:
        depths[tp.topic] += end[tp] - start[tp]
    return depths


class DeadLetters:
    """A connection to the brokers for inspecting and replaying DLQs (`async with`). Reads
    outside any consumer group and commits nothing, so inspecting never moves a subscriber."""

    def __init__(self, bootstrap_servers: str, security: KafkaSecurity = PLAINTEXT) -> None:
        """`security`: TLS and SASL (the CLI's from KEELSON_KAFKA_*: a user that may read the DLQs and
        write the topics replayed to, e.g. the platform's admin; a service's own user may not)."""
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers, client_id="keelson-dlq", **security.options()
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="keelson-dlq",
            **security.options(),
        )
        self._producer = EventProducer(bootstrap_servers=bootstrap_servers, source="keelson-dlq", **security.options())

    async def __aenter__(self) -> DeadLetters:
        try:
            await asyncio.wait_for(self._admin.start(), DEADLINE_SECONDS)
            await asyncio.wait_for(self._consumer.start(), DEADLINE_SECONDS)
            await asyncio.wait_for(self._producer.start(), DEADLINE_SECONDS)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        for close in (self._producer.stop, self._consumer.stop, self._admin.close):
            try:
                await close()
            except Exception:  # closing a half-started client must not hide why it failed
                continue

    async def partitions(self, topics: Collection[str]) -> dict[str, int]:
        """Partition counts of those of `topics` that exist."""
        existing = set(topics) & set(await self._admin.list_topics())
        if not existing:
            return {}
        described = await self._admin.describe_topics(sorted(existing))
        return {t["topic"]: len(t["partitions"]) for t in described if not t.get("error_code")}

    async def all_dlqs(self) -> list[str]:
        names = await self._admin.list_topics()
        return sorted(n for n in names if n.endswith(".dlq") and n.count(".") == 4)

    async def depths(self, dlqs: Collection[str]) -> dict[str, int]:
        """Messages per DLQ, for those that exist."""
        partitions = await self.partitions(dlqs)
        self._assign([TopicPartition(dlq, p) for dlq, count in partitions.items() for p in range(count)])
        return await dlq_depths(self._consumer, partitions)

    def _assign(self, tps: list[TopicPartition]) -> None:
        # Assigned (and paused, so nothing is fetched before it is asked for), the partitions'
        # leaders are looked up at once; offsets of unassigned ones wait for a metadata refresh.
        self._consumer.assign(tps)
        self._consumer.pause(*tps)

    async def read(self, dlq: str) -> list[DeadLetter]:
        """Every message the DLQ holds now, in partition and offset order."""
        parse_dlq(dlq)
        count = (await self.partitions([dlq])).get(dlq)
        if count is None:
            raise LookupError(f"topic {dlq} does not exist")
        tps = [TopicPartition(dlq, p) for p in range(count)]
        self._consumer.assign(tps)
        end = await self._consumer.end_offsets(tps)
        await self._consumer.seek_to_beginning(*tps)
        letters: list[DeadLetter] = []
        remaining = {tp for tp in tps if await self._consumer.position(tp) < end[tp]}
        while remaining:
            batch = await asyncio.wait_for(self._consumer.getmany(*remaining, timeout_ms=1000), DEADLINE_SECONDS)
            for tp, records in batch.items():
                letters += [
                    DeadLetter(dlq, r.partition, r.offset, r.timestamp, r.key, r.value, tuple(r.headers or ()))
                    for r in records
                    if r.offset < end[tp]
                ]
                if await self._consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        self._consumer.unsubscribe()
        return sorted(letters, key=lambda letter: (letter.partition, letter.offset))

    async def replay(self, letters: Collection[DeadLetter]) -> None:
        """Send each message back to its original topic, for its own subscriber only, and wait
        until the brokers have all of them."""
        deliveries = [
            await self._producer.send(
                letter.original_topic,
                key=letter.key,
                value=letter.value,
                headers=headers.replayed(
                    letter.headers, service=letter.service, source=f"{letter.dlq}/{letter.partition}/{letter.offset}"
                ),
            )
            for letter in letters
        ]
        await asyncio.gather(*deliveries)
