"""Strimzi `KafkaTopic` objects, for `spec.kafka.provider: strimzi`: Strimzi's Topic Operator
creates the topics, Keelson only declares them (as children of the platform)."""

from __future__ import annotations

from typing import Any

from keelson.render.context import RenderContext
from keelson.render.labels import metadata
from keelson.topics import plan_topics

STRIMZI_API_VERSION = "kafka.strimzi.io/v1"
CLUSTER_LABEL = "strimzi.io/cluster"


def render_kafka_topics(ctx: RenderContext) -> list[dict[str, Any]]:
    kafka = ctx.spec.kafka
    if kafka is None or kafka.provider != "strimzi" or not kafka.strimziCluster:
        return []
    out = []
    for topic in plan_topics(ctx.spec):
        if not topic.managed:
            continue
        meta = metadata(ctx, topic.name, topic.subscription, with_service=False)
        meta["labels"][CLUSTER_LABEL] = kafka.strimziCluster
        spec: dict[str, Any] = {
            "topicName": topic.name,
            "partitions": topic.partitions,
            "replicas": topic.replication_factor,
        }
        if topic.config:
            spec["config"] = dict(topic.config)
        out.append({"apiVersion": STRIMZI_API_VERSION, "kind": "KafkaTopic", "metadata": meta, "spec": spec})
    return out
