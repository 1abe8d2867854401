"""CloudNativePG objects for `spec.databases.provider: cloudnative-pg` (postgresql.cnpg.io/v1).

A `Cluster` per platform (unless `spec.databases.cluster` names an existing one), its managed
roles (one per service, password from the service's basic-auth Secret), and a `Database` per
service owned by that role. CloudNativePG creates and drops them; Keelson only declares.

Deletion policy: `databaseReclaimPolicy` follows it (retain/delete). Under Retain the emitted
Cluster carries `keelson.dev/outlives-platform` so the reconciler gives it no owner reference:
garbage collection of the platform would otherwise delete the Cluster and its volumes with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from keelson.databases.naming import identifier, secret_name
from keelson.render.context import RenderContext
from keelson.render.labels import metadata

API_VERSION = "postgresql.cnpg.io/v1"
OUTLIVES_PLATFORM = "keelson.dev/outlives-platform"
DEFAULT_INSTANCES = 3
DEFAULT_STORAGE = "10Gi"
PORT = 5432


def cluster_name(ctx: RenderContext) -> str:
    databases = ctx.spec.databases
    return databases.cluster if databases and databases.cluster else f"{ctx.name}-db"


def emits_cluster(ctx: RenderContext) -> bool:
    databases = ctx.spec.databases
    return not (databases and databases.cluster)


def read_write_host(ctx: RenderContext) -> str:
    """CloudNativePG's Service for the primary."""
    return f"{cluster_name(ctx)}-rw.{ctx.namespace}.svc"


def retain(ctx: RenderContext) -> bool:
    databases = ctx.spec.databases
    return not (databases and databases.deletionPolicy == "Delete")


def database_services(ctx: RenderContext) -> list[str]:
    return [s.name for s in ctx.spec.services if s.database is not None]


def render_cluster(ctx: RenderContext, role_services: Iterable[str]) -> dict[str, Any]:
    """The platform's Cluster; managed roles for `role_services` (those whose Secret exists, so the
    password Secret is always there before the role that reads it)."""
    databases = ctx.spec.databases
    instances = (databases.instances if databases else None) or DEFAULT_INSTANCES
    storage = (databases.storageSize if databases else None) or DEFAULT_STORAGE
    roles = [
        {
            "name": identifier(ctx.namespace, ctx.name, service),
            "ensure": "present",
            "login": True,
            "passwordSecret": {"name": secret_name(ctx.name, service)},
            "comment": f"keelson: {ctx.namespace}/{ctx.name}/{service}",
        }
        for service in sorted(role_services)
    ]
    meta = metadata(ctx, cluster_name(ctx))
    if retain(ctx):
        meta["annotations"] = {OUTLIVES_PLATFORM: "true"}
    spec: dict[str, Any] = {"instances": instances, "storage": {"size": str(storage)}}
    if roles:
        spec["managed"] = {"roles": roles}
    return {"apiVersion": API_VERSION, "kind": "Cluster", "metadata": meta, "spec": spec}


def render_database(ctx: RenderContext, service: str) -> dict[str, Any]:
    name = identifier(ctx.namespace, ctx.name, service)
    return {
        "apiVersion": API_VERSION,
        "kind": "Database",
        "metadata": metadata(ctx, f"{ctx.name}-{service}", service, with_service=False),
        "spec": {
            "cluster": {"name": cluster_name(ctx)},
            "name": name,
            "owner": name,
            "ensure": "present",
            "databaseReclaimPolicy": "retain" if retain(ctx) else "delete",
        },
    }
