"""How many messages wait in each DLQ, asked of the brokers. Optional: `keelson status` shows the
depths only when it is given a reachable bootstrap address, and says so otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from keelson.kafkaclient import PLAINTEXT, KafkaSecurity

# A status view must not hang on a broker that does not answer: past this, no depths are shown.
DEADLINE_SECONDS = 5.0


async def _depths(bootstrap: str, dlqs: Mapping[str, int], security: KafkaSecurity) -> dict[str, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=4000, **security.options()
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for topic, count in dlqs.items() for p in range(count)]
        if not partitions:
            return {}
        start = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        depths: dict[str, int] = {}
        for tp in partitions:
            depths[tp.topic] = depths.get(tp.topic, 0) + end[tp] - start[tp]
        return depths
    finally:
        await consumer.stop()


def dlq_depths(bootstrap: str, dlqs: Mapping[str, int], security: KafkaSecurity = PLAINTEXT) -> dict[str, int]:
    """Messages retained per DLQ, given each one's partitions (from the platform's status); OSError
    or TimeoutError when the brokers cannot be asked. `security`: TLS and SASL (the CLI's from
    KEELSON_KAFKA_*, as `keelson dev env` exports them)."""
    try:
        return asyncio.run(asyncio.wait_for(_depths(bootstrap, dlqs, security), DEADLINE_SECONDS))
    except TimeoutError:
        raise
    except Exception as exc:  # aiokafka's errors share no base with OSError
        raise OSError(f"Kafka at {bootstrap}: {exc}") from exc
