"""The Kubernetes side of a service's database: its credentials Secret, the Deployment's env from
it, and the NetworkPolicy egress to the server. Pure: the area supplies the credentials."""

from __future__ import annotations

from typing import Any

from keelson.databases.credentials import KEK_KEY, SECRET_TYPE, Credentials, secret_data
from keelson.databases.naming import secret_name
from keelson.databases.rotation import TOKEN_ANNOTATION
from keelson.effective import EffectiveService
from keelson.render.context import RenderContext
from keelson.render.labels import metadata, selector_labels

COMPONENT_LABEL = "keelson.dev/component"
DATABASE_COMPONENT = "database"
CHECKSUM_ANNOTATION = "keelson.dev/database-checksum"
# Environment variable -> Secret key. `uri` is required; the rest are optional for provider
# external, whose Secret the user writes.
ENV_KEYS = {
    "KEELSON_DATABASE_URI": "uri",
    "KEELSON_DATABASE_HOST": "host",
    "KEELSON_DATABASE_PORT": "port",
    "KEELSON_DATABASE_NAME": "dbname",
    "KEELSON_DATABASE_USER": "user",
    "KEELSON_DATABASE_PASSWORD": "password",
}
REQUIRED_KEY = "uri"
# The reference services that encrypt what they store with the Secret's key-encryption key, and
# the variable they read it from (optional in the pod: an older Secret gains it on the next pass).
KEK_READERS = frozenset({"users"})
KEK_ENV = "KEELSON_KEY_ENCRYPTION_KEY"


def provider(ctx: RenderContext) -> str:
    databases = ctx.spec.databases
    return (databases.provider if databases else None) or "postgres"


def database_secret_name(ctx: RenderContext, service: str) -> str:
    """The Secret the service's pods read: the user's own for provider external, else Keelson's."""
    database = ctx.spec.service(service).database
    if provider(ctx) == "external" and database and database.secretRef:
        return database.secretRef.name
    return secret_name(ctx.name, service)


def database_env(ctx: RenderContext, svc: EffectiveService) -> list[dict[str, Any]]:
    if not svc.has_database:
        return []
    name = database_secret_name(ctx, svc.name)
    lenient = provider(ctx) == "external"
    env = []
    for var, key in ENV_KEYS.items():
        ref: dict[str, Any] = {"name": name, "key": key}
        if lenient and key != REQUIRED_KEY:
            ref["optional"] = True
        env.append({"name": var, "valueFrom": {"secretKeyRef": ref}})
    if svc.reference in KEK_READERS:
        env.append({"name": KEK_ENV, "valueFrom": {"secretKeyRef": {"name": name, "key": KEK_KEY, "optional": True}}})
    return env


def render_database_secret(
    ctx: RenderContext,
    service: str,
    creds: Credentials,
    *,
    token: str | None,
    extra_labels: dict[str, str],
    kek: str | None = None,
) -> dict[str, Any]:
    meta = metadata(ctx, secret_name(ctx.name, service), service)
    meta["labels"].update({COMPONENT_LABEL: DATABASE_COMPONENT, **extra_labels})
    if token:
        meta["annotations"] = {TOKEN_ANNOTATION: token}
    data = secret_data(creds, kek)
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": SECRET_TYPE, "data": data}


def egress_policy_name(service: str) -> str:
    # A dot cannot occur in a service name (a DNS-1035 label), so this never meets another
    # service's own NetworkPolicy.
    return f"{service}.database"


def render_database_egress(ctx: RenderContext, service: str, host: str, port: int) -> dict[str, Any]:
    """Egress from the service's pods to its database server, as precisely as the address allows:
    an IP becomes an ipBlock, `<name>.<namespace>.svc...` the namespace's pods, any other host
    name (outside the cluster) only the port."""
    rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": port}]}
    labels = host.split(".")
    if host.replace(".", "").isdigit():
        rule["to"] = [{"ipBlock": {"cidr": f"{host}/32"}}]
    elif ":" in host:
        rule["to"] = [{"ipBlock": {"cidr": f"{host}/128"}}]
    elif len(labels) >= 3 and labels[2] == "svc":
        rule["to"] = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": labels[1]}}}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(ctx, egress_policy_name(service), service),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(ctx, service)},
            "policyTypes": ["Egress"],
            "egress": [rule],
        },
    }
