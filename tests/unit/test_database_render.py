"""Rendering for databases: the credentials Secret, env wiring, egress, CloudNativePG objects."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from keelson.databases.credentials import SECRET_TYPE, Credentials, from_secret
from keelson.render import cnpg
from keelson.render.databases import (
    ENV_KEYS,
    database_env,
    render_database_egress,
    render_database_secret,
)
from tests.unit.render_helpers import context, objects

CREDS = Credentials("10.1.2.3", 5433, "shop_orders_x", "shop_orders_x", "s3cret-pw", "require")


def _env(ctx: Any, service: str) -> dict[str, dict[str, Any]]:
    dep = objects(ctx)[("Deployment", service)]
    return {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0].get("env", [])}


def test_secret_holds_every_key_base64_and_round_trips() -> None:
    secret = render_database_secret(context(), "orders", CREDS, token="t1", extra_labels={})
    assert secret["type"] == SECRET_TYPE == "kubernetes.io/basic-auth"
    assert secret["metadata"]["name"] == "shop-orders-db"
    assert secret["metadata"]["labels"]["keelson.dev/platform"] == "shop"
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "keelson"
    assert secret["metadata"]["annotations"] == {"keelson.dev/rotation-token": "t1"}
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["uri"] == "postgresql://shop_orders_x:s3cret-pw@10.1.2.3:5433/shop_orders_x?sslmode=require"
    assert data["user"] == data["username"] == "shop_orders_x" and data["port"] == "5433"
    assert "stringData" not in secret  # stringData would never match the live object
    assert from_secret(secret) == CREDS


def test_credentials_repr_hides_the_password() -> None:
    assert "s3cret" not in repr(CREDS) and "s3cret" not in str(CREDS)


def test_deployment_reads_the_database_from_its_secret() -> None:
    env = _env(context(), "orders")
    assert set(ENV_KEYS) <= set(env)
    uri = env["KEELSON_DATABASE_URI"]["valueFrom"]["secretKeyRef"]
    assert uri == {"name": "shop-orders-db", "key": "uri"}
    assert env["KEELSON_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "password"

    def without(spec: dict[str, Any]) -> None:
        next(svc for svc in spec["services"] if svc["name"] == "gateway").pop("database")

    assert "KEELSON_DATABASE_URI" not in _env(context(without), "gateway")  # a service without a database


def test_external_provider_wires_the_users_secret_with_optional_extras() -> None:
    def external(spec: dict[str, Any]) -> None:
        spec["databases"] = {"provider": "external"}
        for svc in spec["services"]:
            if "database" in svc:
                svc["database"]["secretRef"] = {"name": f"{svc['name']}-pg"}

    env = _env(context(external), "orders")
    assert env["KEELSON_DATABASE_URI"]["valueFrom"]["secretKeyRef"] == {"name": "orders-pg", "key": "uri"}
    assert env["KEELSON_DATABASE_HOST"]["valueFrom"]["secretKeyRef"]["optional"] is True


def test_the_services_own_env_replaces_the_databases_variable() -> None:
    def own(spec: dict[str, Any]) -> None:
        spec["services"][2]["env"] = [{"name": "KEELSON_DATABASE_URI", "value": "postgresql://elsewhere/x"}]

    dep = objects(context(own))[("Deployment", "orders")]
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    # One entry per name: server-side apply refuses a list map with two entries of one key.
    assert [e for e in env if e["name"] == "KEELSON_DATABASE_URI"] == [
        {"name": "KEELSON_DATABASE_URI", "value": "postgresql://elsewhere/x"}
    ]


@pytest.mark.parametrize(
    ("host", "to"),
    [
        ("10.0.0.7", [{"ipBlock": {"cidr": "10.0.0.7/32"}}]),
        ("pg.databases.svc", [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "databases"}}}]),
        (
            "pg.databases.svc.cluster.local",
            [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "databases"}}}],
        ),
        ("db.example.com", None),  # outside the cluster: only the port can be constrained
    ],
)
def test_egress_to_the_server_is_as_precise_as_its_address(host: str, to: Any) -> None:
    policy = render_database_egress(context(), "orders", host, 5433)
    assert policy["metadata"]["name"] == "orders.database"
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "orders",
        "keelson.dev/platform": "shop",
    }
    (rule,) = policy["spec"]["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5433}]
    assert rule.get("to") == to


def _cnpg(policy: str = "Retain", **extra: Any) -> Any:
    def mutate(spec: dict[str, Any]) -> None:
        spec["databases"] = {"provider": "cloudnative-pg", "deletionPolicy": policy, **extra}

    return context(mutate)


def test_cnpg_cluster_with_managed_roles_reading_the_secrets() -> None:
    ctx = _cnpg(instances=2, storageSize="5Gi")
    cluster = cnpg.render_cluster(ctx, ["orders", "users"])
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1" and cluster["metadata"]["name"] == "shop-db"
    assert cluster["spec"]["instances"] == 2 and cluster["spec"]["storage"] == {"size": "5Gi"}
    roles = cluster["spec"]["managed"]["roles"]
    assert [r["passwordSecret"]["name"] for r in roles] == ["shop-orders-db", "shop-users-db"]
    assert all(r["login"] is True and r["ensure"] == "present" for r in roles)
    defaults = cnpg.render_cluster(_cnpg(), [])
    assert defaults["spec"] == {"instances": 3, "storage": {"size": "10Gi"}}


def test_cnpg_reclaim_policy_and_cluster_ownership_follow_the_deletion_policy() -> None:
    retain, delete = _cnpg("Retain"), _cnpg("Delete")
    assert cnpg.render_database(retain, "orders")["spec"]["databaseReclaimPolicy"] == "retain"
    assert cnpg.render_database(delete, "orders")["spec"]["databaseReclaimPolicy"] == "delete"
    # Retain: the Cluster (and its volumes) must survive the platform's garbage collection.
    assert cnpg.render_cluster(retain, [])["metadata"]["annotations"] == {cnpg.OUTLIVES_PLATFORM: "true"}
    assert "annotations" not in cnpg.render_cluster(delete, [])["metadata"]


def test_cnpg_database_is_owned_by_the_services_role() -> None:
    ctx = _cnpg()
    db = cnpg.render_database(ctx, "orders")
    assert db["metadata"]["name"] == "shop-orders"
    assert db["spec"]["cluster"] == {"name": "shop-db"}
    assert (
        db["spec"]["name"]
        == db["spec"]["owner"]
        == cnpg.render_cluster(ctx, ["orders"])["spec"]["managed"]["roles"][0]["name"]
    )


def test_cnpg_existing_cluster_is_used_not_emitted_and_egress_targets_its_pods() -> None:
    ctx = _cnpg(cluster="shared-pg")
    assert not cnpg.emits_cluster(ctx)
    assert cnpg.render_database(ctx, "orders")["spec"]["cluster"] == {"name": "shared-pg"}
    assert cnpg.read_write_host(ctx) == "shared-pg-rw.shop-ns.svc"
    egress = objects(ctx)[("NetworkPolicy", "orders")]["spec"]["egress"]
    assert {
        "to": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": "shared-pg"}}}],
        "ports": [{"protocol": "TCP", "port": 5432}],
    } in egress
    assert (
        database_env(ctx, next(s for s in ctx.services if s.name == "orders"))[0]["valueFrom"]["secretKeyRef"]["name"]
        == "shop-orders-db"
    )


def test_a_retained_cluster_gets_no_owner_reference_so_it_outlives_the_platform() -> None:
    from keelson.controller.reconciler import _owned

    owner = {"uid": "u", "controller": True}
    assert "ownerReferences" not in _owned(cnpg.render_cluster(_cnpg("Retain"), []), owner)["metadata"]
    assert _owned(cnpg.render_cluster(_cnpg("Delete"), []), owner)["metadata"]["ownerReferences"] == [owner]
    assert _owned(cnpg.render_database(_cnpg("Retain"), "orders"), owner)["metadata"]["ownerReferences"] == [owner]
