"""Adapting a platform manifest to the local stack, for `keelson dev apply`. Pure.

An example written for a real cluster names a Kafka at `kafka.kafka:9092` with three replicas and
an admin Secret of its own; on the local stack there is one broker on loopback and one
PostgreSQL server. This rewrites only those addresses, so any example runs locally unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

from keelson.api.v1alpha1 import GROUP, KIND

LOCAL_ADMIN_SECRET = "pg-admin"


def localize(doc: dict[str, Any], *, kafka: dict[str, Any] | None, postgres: bool) -> dict[str, Any]:
    """`kafka`: the stack's `spec.kafka` fields (bootstrapServers, and tls and authentication
    naming the stack's Secrets unless it runs plaintext), or None without a broker."""
    if doc.get("kind") != KIND or not str(doc.get("apiVersion", "")).startswith(f"{GROUP}/"):
        return doc
    out = copy.deepcopy(doc)
    spec = out.setdefault("spec", {})
    settings = spec.get("kafka")
    if settings is not None:
        if kafka and settings.get("provider", "none") in ("admin", "strimzi"):
            for key in ("strimziCluster", "tls", "authentication"):
                settings.pop(key, None)
            settings.update(provider="admin", replicationFactor=1, **copy.deepcopy(kafka))
        elif not kafka:
            settings["provider"] = "none"
    databases = spec.get("databases")
    if databases is not None and postgres and databases.get("provider", "postgres") != "external":
        databases.update(provider="postgres", adminSecretRef={"name": LOCAL_ADMIN_SECRET})
        for key in ("cluster", "instances", "storageSize"):
            databases.pop(key, None)
    return out
