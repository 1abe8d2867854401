"""Databases per service on a real PostgreSQL server (the local stack's), through a real API server,
with the operator holding only the chart's RBAC."""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from e2e.conftest import established, operator_env
from e2e.kube import Kube, eventually, operator_metric, operator_writes, reconcile_count, third_party_crds, utcnow
from keelson.controller.database_area import DEADLINE_SECONDS as DATABASES_DEADLINE
from keelson.databases.naming import identifier
from keelson.devstack.stack import LocalStack
from tests.cases.invalid_platforms import example
from tests.fakes.hung_postgres import HungPostgres

pytestmark = pytest.mark.cluster

DB_SERVICES = ["gateway", "notifications", "orders", "payments", "users"]


# -- helpers ---------------------------------------------------------------------------------------


def _platform(**databases: Any) -> dict[str, Any]:
    """The e-commerce example without Kafka (its brokers are another test's business)."""
    doc = example()
    del doc["spec"]["kafka"]
    doc["spec"]["databases"].update(databases)
    return doc


def _condition(kube: Kube, namespace: str, ctype: str = "DatabasesReady") -> dict[str, Any] | None:
    return kube.condition("shop", namespace, ctype)


def _databases_ready(kube: Kube, namespace: str) -> dict[str, Any] | None:
    cond = _condition(kube, namespace)
    return cond if cond and cond["status"] == "True" else None


def _secret_data(kube: Kube, namespace: str, name: str) -> dict[str, str] | None:
    secret = kube.get("secret", name, namespace)
    if secret is None:
        return None
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def _admin(stack: LocalStack) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(stack.postgres_admin_uri, autocommit=True, connect_timeout=5)


def _exists(stack: LocalStack, name: str) -> tuple[bool, bool]:
    with _admin(stack) as conn:
        role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        db = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return role is not None, db is not None


def _password_hash(stack: LocalStack, name: str) -> str:
    with _admin(stack) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (name,)).fetchone()
    assert row is not None
    return str(row[0])


def _template_annotations(kube: Kube, namespace: str, name: str) -> dict[str, str]:
    dep = kube.get("deployment", name, namespace) or {}
    return dict(dep.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {}))


@pytest.fixture
def admin_secret(kube: Kube, namespace: str, stack: LocalStack) -> str:
    """The admin Secret the example refers to, in the test's namespace."""
    kube.apply(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pg-admin"},
            "stringData": {"uri": stack.postgres_admin_uri},
        },
    )
    return "pg-admin"


@pytest.fixture
def postgres_back(stack: LocalStack) -> Iterator[None]:
    """Whatever a test does to the server, the next one finds it running."""
    yield
    stack.start_component("postgres")


def _provisioned(kube: Kube, namespace: str, doc: dict[str, Any]) -> None:
    kube.apply(namespace, doc)
    eventually(lambda: _databases_ready(kube, namespace), timeout=60, what="DatabasesReady=True")


# -- provider postgres -----------------------------------------------------------------------------


def test_each_service_gets_its_own_database_and_only_that(kube: Kube, namespace: str, admin_secret: str) -> None:
    _provisioned(kube, namespace, _platform())
    msp = kube.get("msp", "shop", namespace)
    assert msp is not None
    entries = {e["service"]: e for e in msp["status"]["databases"]}
    assert sorted(entries) == DB_SERVICES
    creds = {}
    for service in DB_SERVICES:
        entry = entries[service]
        assert entry["provider"] == "postgres" and entry["ready"] and entry["secret"] == f"shop-{service}-db"
        secret = kube.get("secret", entry["secret"], namespace)
        assert secret is not None and secret["type"] == "kubernetes.io/basic-auth"
        assert secret["metadata"]["ownerReferences"][0]["uid"] == msp["metadata"]["uid"]
        assert secret["metadata"]["labels"]["keelson.dev/platform"] == "shop"
        data = _secret_data(kube, namespace, entry["secret"])
        assert data is not None and data["dbname"] == entry["database"] == data["user"]
        creds[service] = data
        with psycopg.connect(data["uri"], connect_timeout=5) as conn:
            conn.execute("CREATE TABLE things (id int primary key, note text)")
            conn.execute("INSERT INTO things VALUES (1, %s)", (service,))
    for service, other in [("orders", "users"), ("users", "payments"), ("notifications", "orders")]:
        mine = creds[service]
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(
                host=mine["host"],
                port=mine["port"],
                user=mine["user"],
                password=mine["password"],
                dbname=creds[other]["dbname"],
                connect_timeout=5,
            )
    # The pods get the credentials from the Secret, never as literals.
    env = {
        e["name"]: e
        for e in kube.get("deployment", "orders", namespace)["spec"]["template"]["spec"]["containers"][0]["env"]
    }  # type: ignore[index]
    assert env["KEELSON_DATABASE_URI"]["valueFrom"]["secretKeyRef"] == {"name": "shop-orders-db", "key": "uri"}
    assert "value" not in env["KEELSON_DATABASE_PASSWORD"]
    assert "keelson.dev/database-checksum" in _template_annotations(kube, namespace, "orders")
    # Nothing secret in status or Events.
    events = " ".join(e.get("message", "") for e in kube.list("events", namespace))
    status = str(kube.get("msp", "shop", namespace))
    for data in creds.values():
        assert data["password"] not in events and data["password"] not in status


def test_a_second_reconcile_changes_nothing(kube: Kube, namespace: str, admin_secret: str, stack: LocalStack) -> None:
    _provisioned(kube, namespace, _platform())
    names = {s: identifier(namespace, "shop", s) for s in DB_SERVICES}
    versions = {s: kube.get("secret", f"shop-{s}-db", namespace)["metadata"]["resourceVersion"] for s in DB_SERVICES}  # type: ignore[index]
    hashes = {s: _password_hash(stack, n) for s, n in names.items()}
    since = utcnow()
    before = reconcile_count(stack.ports["operator-metrics"])
    kube.run("annotate", "msp", "shop", "-n", namespace, "test.example/poke=1")  # wakes a reconcile
    eventually(lambda: reconcile_count(stack.ports["operator-metrics"]) > before + 1, timeout=30, what="reconciles")
    assert {
        s: kube.get("secret", f"shop-{s}-db", namespace)["metadata"]["resourceVersion"] for s in DB_SERVICES
    } == versions  # type: ignore[index]
    assert {s: _password_hash(stack, n) for s, n in names.items()} == hashes
    writes = [
        w
        for w in operator_writes(stack.audit_log, since=since, namespace=namespace)
        if w["objectRef"]["resource"] == "secrets"
    ]
    assert writes == []


def test_removing_a_database_under_retain_keeps_it_with_its_data(
    kube: Kube, namespace: str, admin_secret: str, stack: LocalStack
) -> None:
    doc = _platform()
    _provisioned(kube, namespace, doc)
    orders = _secret_data(kube, namespace, "shop-orders-db")
    assert orders is not None
    with psycopg.connect(orders["uri"], connect_timeout=5) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    changed = copy.deepcopy(doc)
    del next(s for s in changed["spec"]["services"] if s["name"] == "orders")["database"]
    kube.apply(namespace, changed)

    def retained() -> dict[str, Any] | None:
        msp = kube.get("msp", "shop", namespace) or {}
        entry = next((e for e in msp.get("status", {}).get("databases", []) if e["service"] == "orders"), None)
        return entry if entry and entry.get("message", "").startswith("retained:") else None

    entry = eventually(retained, timeout=30, what="orders reported retained")
    assert orders["dbname"] in entry["message"]
    eventually(lambda: kube.get("secret", "shop-orders-db", namespace) is None, timeout=30, what="Secret pruned")
    events = kube.list("events", namespace)
    assert any(e["reason"] == "DatabaseRetained" and orders["dbname"] in e["message"] for e in events)
    assert _exists(stack, orders["dbname"]) == (True, True)
    with psycopg.connect(orders["uri"], connect_timeout=5) as conn:  # the role and its password are kept
        assert conn.execute("SELECT v FROM kept").fetchall() == [("still here",)]
    # Deleting the platform under Retain keeps every database.
    kube.run("delete", "msp", "shop", "-n", namespace, "--wait=true", "--timeout=60s")
    assert all(_exists(stack, identifier(namespace, "shop", s)) == (True, True) for s in DB_SERVICES)
    # ... and says where they are, in an Event that outlives the platform.
    kept = eventually(
        lambda: next((e for e in kube.list("events", namespace) if e["reason"] == "Retained"), None),
        timeout=30,
        what="Retained event",
    )
    assert all(identifier(namespace, "shop", s) in kept["message"] for s in DB_SERVICES if s != "orders")


def test_delete_policy_drops_a_removed_database_and_all_at_platform_deletion(
    kube: Kube, namespace: str, admin_secret: str, stack: LocalStack
) -> None:
    doc = _platform(deletionPolicy="Delete")
    _provisioned(kube, namespace, doc)
    msp = kube.get("msp", "shop", namespace)
    assert msp is not None and "keelson.dev/cleanup" in msp["metadata"]["finalizers"]
    orders = identifier(namespace, "shop", "orders")
    changed = copy.deepcopy(doc)
    del next(s for s in changed["spec"]["services"] if s["name"] == "orders")["database"]
    kube.apply(namespace, changed)
    eventually(lambda: _exists(stack, orders) == (False, False), timeout=30, what="orders dropped")
    assert _exists(stack, identifier(namespace, "shop", "users")) == (True, True)
    kube.run("delete", "msp", "shop", "-n", namespace, "--wait=true", "--timeout=60s")
    for service in ("users", "payments", "notifications"):
        assert _exists(stack, identifier(namespace, "shop", service)) == (False, False)
    events = kube.list("events", namespace)
    assert any(e["reason"] == "DatabaseDropped" for e in events)  # orders, during the reconcile
    assert any(e["reason"] == "DatabasesDropped" for e in events)  # the rest, by the finalizer


def test_deleting_the_namespace_drops_the_databases_and_is_not_held(
    kube: Kube, namespace: str, admin_secret: str, stack: LocalStack
) -> None:
    """The namespace controller deletes the admin Secret with the platform, often first: the
    finalizer's drops must not wait for a Secret no one can create in a terminating namespace."""
    _provisioned(kube, namespace, _platform(deletionPolicy="Delete"))
    names = [identifier(namespace, "shop", s) for s in DB_SERVICES]
    assert all(_exists(stack, n) == (True, True) for n in names)
    # The Secret first, as the namespace controller may do it, then the namespace.
    kube.run("delete", "secret", admin_secret, "-n", namespace)
    kube.run("delete", "namespace", namespace, "--wait=false")
    eventually(
        lambda: kube.run("get", "namespace", namespace, check=False).returncode != 0,
        timeout=120,
        what="namespace gone",
    )
    assert [n for n in names if _exists(stack, n) != (False, False)] == []


def test_rotation_by_annotation(kube: Kube, namespace: str, admin_secret: str) -> None:
    _provisioned(kube, namespace, _platform())
    old = _secret_data(kube, namespace, "shop-orders-db")
    users = _secret_data(kube, namespace, "shop-users-db")
    assert old is not None
    checksum = _template_annotations(kube, namespace, "orders")["keelson.dev/database-checksum"]
    kube.run("annotate", "msp", "shop", "-n", namespace, "keelson.dev/rotate-credentials=orders@2026-11-25T10:00Z")
    new = eventually(
        lambda: (d := _secret_data(kube, namespace, "shop-orders-db")) and d["password"] != old["password"] and d,
        timeout=30,
        what="rotated Secret",
    )
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(old["uri"], connect_timeout=5)
    with psycopg.connect(new["uri"], connect_timeout=5) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (new["user"],)
    eventually(
        lambda: _template_annotations(kube, namespace, "orders")["keelson.dev/database-checksum"] != checksum,
        timeout=30,
        what="pod template rolled",
    )
    assert _secret_data(kube, namespace, "shop-users-db") == users  # only the named service
    events = kube.list("events", namespace)
    assert any(e["reason"] == "CredentialsRotated" for e in events)
    assert not any(new["password"] in e.get("message", "") for e in events)


def test_deleted_secret_is_restored_with_the_same_credentials(kube: Kube, namespace: str, admin_secret: str) -> None:
    _provisioned(kube, namespace, _platform())
    before = _secret_data(kube, namespace, "shop-payments-db")
    uid = kube.get("secret", "shop-payments-db", namespace)["metadata"]["uid"]  # type: ignore[index]
    kube.run("delete", "secret", "shop-payments-db", "-n", namespace)
    eventually(
        lambda: (s := kube.get("secret", "shop-payments-db", namespace)) and s["metadata"]["uid"] != uid,
        timeout=30,
        what="Secret restored",
    )
    assert _secret_data(kube, namespace, "shop-payments-db") == before


def test_server_down_is_reported_and_recovered_from(
    kube: Kube, namespace: str, admin_secret: str, stack: LocalStack, postgres_back: None
) -> None:
    doc = _platform()
    _provisioned(kube, namespace, doc)
    versions = {s: kube.get("secret", f"shop-{s}-db", namespace)["metadata"]["resourceVersion"] for s in DB_SERVICES}  # type: ignore[index]
    checksum = _template_annotations(kube, namespace, "orders")["keelson.dev/database-checksum"]
    assert stack.stop_component("postgres")
    changed = copy.deepcopy(doc)
    changed["spec"]["services"].append({"name": "search", "image": "registry.example/search:1"})
    kube.apply(namespace, changed)  # the rest of the platform still reconciles
    cond = eventually(
        lambda: (c := _condition(kube, namespace)) and c["status"] == "False" and c,
        timeout=30,
        what="DatabasesReady=False",
    )
    assert cond["reason"] == "ServerUnreachable"
    eventually(lambda: kube.get("deployment", "search", namespace), timeout=30, what="new service applied")
    ready = _condition(kube, namespace, "Ready")
    assert ready is not None and ready["status"] == "False"
    # Nothing the pods depend on was touched meanwhile.
    assert {
        s: kube.get("secret", f"shop-{s}-db", namespace)["metadata"]["resourceVersion"] for s in DB_SERVICES
    } == versions  # type: ignore[index]
    assert _template_annotations(kube, namespace, "orders")["keelson.dev/database-checksum"] == checksum
    stack.start_component("postgres")
    eventually(lambda: _databases_ready(kube, namespace), timeout=90, interval=1, what="recovered by itself")


def test_wrong_admin_credentials_are_reported(kube: Kube, namespace: str, stack: LocalStack) -> None:
    wrong = stack.postgres_admin_uri.replace("@", "x@", 1)  # a wrong password
    kube.apply(
        namespace,
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pg-admin"}, "stringData": {"uri": wrong}},
    )
    kube.apply(namespace, _platform())
    cond = eventually(
        lambda: (c := _condition(kube, namespace)) and c["status"] == "False" and c, timeout=30, what="condition"
    )
    assert cond["reason"] == "AdminCredentialsRejected"
    assert "x@" not in cond["message"] and "password=" not in cond["message"]
    kube.apply(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pg-admin"},
            "stringData": {"uri": stack.postgres_admin_uri},
        },
    )
    eventually(lambda: _databases_ready(kube, namespace), timeout=90, interval=1, what="recovered")


def test_missing_admin_secret_is_reported(kube: Kube, namespace: str) -> None:
    kube.apply(namespace, _platform())
    cond = eventually(
        lambda: (c := _condition(kube, namespace)) and c["status"] == "False" and c, timeout=30, what="condition"
    )
    assert cond["reason"] == "AdminSecretMissing"
    eventually(
        lambda: (c := _condition(kube, namespace, "WorkloadsReady")) and c["status"] == "True",
        timeout=90,
        what="workloads",
    )


def _platforms_being_deleted(kube: Kube) -> list[str]:
    items = json.loads(kube.run("get", "msp", "--all-namespaces", "-o", "json").stdout)["items"]
    return [
        f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in items if p["metadata"].get("deletionTimestamp")
    ]


def _sessions(stack: LocalStack) -> int:
    """Sessions the server has seen, this one included (pg_stat_database.sessions, PostgreSQL 14+)."""
    with _admin(stack) as conn:
        row = conn.execute("SELECT sum(sessions) FROM pg_stat_database").fetchone()
    return int(row[0]) if row else 0


def test_a_deployment_status_event_alone_runs_no_database_pass(
    kube: Kube, namespace: str, admin_secret: str, stack: LocalStack
) -> None:
    # The sessions counted are the server's: earlier tests' platforms still being deleted (their
    # namespaces go with --wait=false) run their cleanup, which opens sessions; CI saw one land in
    # the window. Let them finish first.
    eventually(lambda: not _platforms_being_deleted(kube), timeout=180, what="earlier platforms' deletion")
    # An hour's resync: any database pass in the window is one an event caused, not the clock
    # (with the suite's 10 s resync a due pass could land in it; CI saw that).
    with operator_env(stack, KEELSON_RESYNC_SECONDS="3600"):
        port = stack.ports["operator-metrics"]
        _provisioned(kube, namespace, _platform())
        eventually(lambda: kube.condition("shop", namespace, "Ready").get("status") == "True", timeout=90, what="Ready")  # type: ignore[union-attr]
        # Every platform's first pass after the restart ran its areas; wait until none is queued.
        eventually(lambda: operator_metric(port, "keelson_queue_depth") == 0, timeout=30, what="an empty queue")
        area = {"area": "DatabasesReady"}
        before_ran = operator_metric(port, "keelson_area_passes_total", **area)
        before_skipped = operator_metric(port, "keelson_area_passes_skipped_total", **area)
        sessions = _sessions(stack)
        before = reconcile_count(port)
        for i in range(3):  # what the kubelet does as pods come and go
            kube.run(
                "patch",
                "deployment",
                "orders",
                "-n",
                namespace,
                "--subresource=status",
                "--type=merge",
                "-p",
                f'{{"status":{{"observedGeneration":{100 + i}}}}}',
            )
            eventually(lambda i=i: reconcile_count(port) > before + i, timeout=30, what="a reconcile")
        assert _sessions(stack) == sessions + 1  # this reading's own: the operator opened none
        assert operator_metric(port, "keelson_area_passes_total", **area) == before_ran
        assert operator_metric(port, "keelson_area_passes_skipped_total", **area) >= before_skipped + 1


@pytest.mark.postgres
def test_a_hung_server_is_reported_within_the_deadline_and_pins_no_worker(kube: Kube, namespace: str) -> None:
    """As many platforms as the operator has workers, on a server that lets them log in and then
    never answers: each reports DatabasesReady=False ServerUnresponsive within the area's
    deadline with its workloads applied, and a platform elsewhere still converges meanwhile."""
    workers = 4  # the operator's default KEELSON_WORKERS
    namespaces = [namespace] + [kube.namespace(f"{namespace[:50]}-{i}") for i in range(1, workers + 1)]
    try:
        with HungPostgres("after_login") as server:
            started = time.monotonic()
            for ns in namespaces[:workers]:
                kube.apply(
                    ns,
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": "pg-admin"},
                        "stringData": {"uri": server.uri},
                    },
                )
                kube.apply(ns, _platform())
            fine = _platform()
            del fine["spec"]["databases"]
            for svc in fine["spec"]["services"]:
                svc.pop("database", None)
            kube.apply(namespaces[workers], fine)

            for ns in namespaces[:workers]:
                cond = eventually(
                    lambda ns=ns: (c := _condition(kube, ns)) and c["reason"] == "ServerUnresponsive" and c,
                    timeout=DATABASES_DEADLINE + 45,
                    what=f"DatabasesReady=False ServerUnresponsive in {ns}",
                )
                assert cond["status"] == "False" and f"127.0.0.1:{server.port}" in cond["message"]
                eventually(
                    lambda ns=ns: (c := _condition(kube, ns, "WorkloadsReady")) and c["status"] == "True",
                    timeout=90,
                    what=f"workloads in {ns}",
                )
            assert time.monotonic() - started < DATABASES_DEADLINE + 60
            eventually(
                lambda: (c := _condition(kube, namespaces[workers], "Ready")) and c["status"] == "True",
                timeout=90,
                what="the platform without databases Ready",
            )
            assert server.logins >= workers
    finally:
        for ns in namespaces[1:]:
            kube.run("delete", "namespace", ns, "--wait=false", check=False)


# -- provider cloudnative-pg -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cnpg_crds(kube: Kube) -> None:
    for name in ("cnpg-cluster.yaml", "cnpg-database.yaml"):
        proc = kube.run("create", "-f", str(third_party_crds() / name), check=False)
        assert proc.returncode == 0 or "AlreadyExists" in proc.stderr, proc.stderr
    for crd in ("clusters.postgresql.cnpg.io", "databases.postgresql.cnpg.io"):
        eventually(lambda crd=crd: established(kube, crd), timeout=60, what=f"CRD {crd} established")
    # No operator restart: both CRDs of one group created at once while it runs is the case kopf
    # can race on (controller/rescanning.py); the tests below need both kinds watched.


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_cloudnative_pg_objects_are_accepted_and_follow_the_policy(
    kube: Kube, namespace: str, cnpg_crds: None, policy: str
) -> None:
    doc = _platform(provider="cloudnative-pg", deletionPolicy=policy, instances=2, storageSize="1Gi")
    del doc["spec"]["databases"]["adminSecretRef"]
    kube.apply(namespace, doc)
    msp = eventually(lambda: kube.get("msp", "shop", namespace), what="platform")

    def roles() -> list[dict[str, Any]] | None:
        cluster = kube.get("clusters.postgresql.cnpg.io", "shop-db", namespace) or {}
        found = cluster.get("spec", {}).get("managed", {}).get("roles", [])
        return found if len(found) == len(DB_SERVICES) else None

    # Secrets first, then the roles that read them.
    assert len(eventually(roles, timeout=60, what="Cluster with a managed role per database")) == len(DB_SERVICES)
    cluster = kube.get("clusters.postgresql.cnpg.io", "shop-db", namespace)
    assert cluster is not None and cluster["spec"]["instances"] == 2 and cluster["spec"]["storage"]["size"] == "1Gi"
    owners = cluster["metadata"].get("ownerReferences", [])
    assert (owners == []) is (policy == "Retain")  # a retained Cluster outlives the platform
    reclaim = "retain" if policy == "Retain" else "delete"
    for service in DB_SERVICES:
        database = kube.get("databases.postgresql.cnpg.io", f"shop-{service}", namespace)
        assert database is not None
        assert database["spec"]["databaseReclaimPolicy"] == reclaim
        assert database["spec"]["owner"] == database["spec"]["name"] == identifier(namespace, "shop", service)
        assert database["metadata"]["ownerReferences"][0]["uid"] == msp["metadata"]["uid"]
        secret = kube.get("secret", f"shop-{service}-db", namespace)
        assert secret is not None and secret["type"] == "kubernetes.io/basic-auth"
        data = _secret_data(kube, namespace, f"shop-{service}-db")
        assert data is not None and data["username"] == database["spec"]["owner"]
        assert data["host"] == f"shop-db-rw.{namespace}.svc"
    cond = _condition(kube, namespace)
    assert cond is not None and cond["reason"] == "DatabasesPending"  # no CloudNativePG controller here
    # What CloudNativePG would report once it applied them:
    for service in DB_SERVICES:
        kube.run(
            "patch",
            "databases.postgresql.cnpg.io",
            f"shop-{service}",
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"applied":true}}',
        )
    eventually(lambda: _databases_ready(kube, namespace), timeout=30, what="DatabasesReady from Database status")


# -- provider external -----------------------------------------------------------------------------


def test_external_secrets_are_checked_and_wired(kube: Kube, namespace: str) -> None:
    doc = _platform(provider="external")
    del doc["spec"]["databases"]["adminSecretRef"]
    for svc in doc["spec"]["services"]:
        if "database" in svc:
            svc["database"]["secretRef"] = {"name": f"{svc['name']}-pg"}
    kube.apply(namespace, doc)
    cond = eventually(
        lambda: (c := _condition(kube, namespace)) and c["status"] == "False" and c, timeout=30, what="condition"
    )
    assert cond["reason"] == "SecretMissing"
    for service in DB_SERVICES:
        kube.apply(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{service}-pg"},
                "stringData": {"uri": f"postgresql://{service}:pw@10.20.0.5:5432/{service}"},
            },
        )
    eventually(lambda: _databases_ready(kube, namespace), timeout=90, interval=1, what="DatabasesReady")
    env = kube.get("deployment", "orders", namespace)["spec"]["template"]["spec"]["containers"][0]["env"]  # type: ignore[index]
    assert {"name": "KEELSON_DATABASE_URI", "valueFrom": {"secretKeyRef": {"name": "orders-pg", "key": "uri"}}} in env
    policy = kube.get("networkpolicy", "orders.database", namespace)
    assert policy is not None and policy["spec"]["egress"] == [
        {"ports": [{"protocol": "TCP", "port": 5432}], "to": [{"ipBlock": {"cidr": "10.20.0.5/32"}}]}
    ]
