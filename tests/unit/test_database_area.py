"""The databases area against an in-memory server: idempotence, recovery, rotation, retention."""

from __future__ import annotations

import base64
import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.controller.areas import AreaResult
from keelson.controller.cache import DictCache
from keelson.controller.database_area import DatabasesArea
from keelson.databases.admin import AdminConnection
from keelson.databases.credentials import Credentials, from_secret
from keelson.databases.server import AdminCredentialsRejected, LiveDatabase, LiveRole, ServerUnreachable
from keelson.kube.resources import Kind
from tests.cases.invalid_platforms import example

UID = "uid-1"
NS = "shop-ns"
ADMIN_URI = "postgresql://admin:adminpw@10.9.8.7:5433/postgres"


@dataclass
class Role:
    password: str
    comment: str | None


@dataclass
class Db:
    owner: str
    comment: str | None
    public: bool


class FakeServer:
    """Roles and databases in memory; `ddl` counts statements that change something."""

    def __init__(self) -> None:
        self.roles: dict[str, Role] = {}
        self.dbs: dict[str, Db] = {}
        self.ddl = 0
        self.logins = 0
        self.down = False
        self.reject = False
        self.explode = False


class FakeSession:
    def __init__(self, server: FakeServer) -> None:
        self.s = server
        self.ddl = 0

    def _changed(self) -> None:
        self.ddl += 1
        self.s.ddl += 1

    async def roles(self, names: Any) -> dict[str, LiveRole]:
        if self.s.explode:
            raise RuntimeError("bug")
        return {n: LiveRole(n, self.s.roles[n].comment) for n in names if n in self.s.roles}

    async def databases(self, names: Any) -> dict[str, LiveDatabase]:
        return {n: LiveDatabase(n, d.comment, d.owner, d.public) for n in names if (d := self.s.dbs.get(n)) is not None}

    async def create_role(self, name: str, password: str, comment: str) -> None:
        assert name not in self.s.roles
        self.s.roles[name] = Role(password, comment)
        self._changed()

    async def set_password(self, name: str, password: str) -> None:
        self.s.roles[name].password = password
        self._changed()

    async def create_database(self, name: str, owner: str, comment: str) -> None:
        self.s.dbs[name] = Db(owner, comment, public=False)
        self._changed()

    async def set_owner(self, name: str, owner: str) -> None:
        self.s.dbs[name].owner = owner
        self._changed()

    async def revoke_public(self, name: str) -> None:
        self.s.dbs[name].public = False
        self._changed()

    async def drop(self, name: str) -> None:
        self.s.dbs.pop(name, None)
        self.s.roles.pop(name, None)
        self._changed()

    async def can_login(self, creds: Credentials) -> bool | None:
        self.s.logins += 1
        role = self.s.roles.get(creds.user)
        return role is not None and role.password == creds.password


class FakeClient:
    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, Any]] = {}

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        assert kind.kind == "Secret" and namespace == NS
        return self.secrets.get(name)


def _secret(**values: str) -> dict[str, Any]:
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


class World:
    """The area plus what the reconciler does with its results: apply (into the cache) and prune."""

    def __init__(self, spec_change: Any = None) -> None:
        self.server = FakeServer()
        self.client = FakeClient()
        self.client.secrets["pg-admin"] = _secret(uri=ADMIN_URI)
        self.cache = DictCache({"Secret": {}, "NetworkPolicy": {}, "Cluster": {}, "Database": {}})
        self.area = self.new_area()
        doc = example()
        if spec_change:
            spec_change(doc["spec"])
        doc["metadata"].update({"namespace": NS, "uid": UID, "annotations": {}})
        self.platform: dict[str, Any] = doc

    def new_area(self) -> DatabasesArea:
        server = self.server

        @asynccontextmanager
        async def connector(admin: AdminConnection) -> AsyncIterator[FakeSession]:
            assert admin.host == "10.9.8.7" and admin.port == 5433
            if server.down:
                raise ServerUnreachable("10.9.8.7:5433: Connection refused")
            if server.reject:
                raise AdminCredentialsRejected("10.9.8.7:5433: password authentication failed")
            yield FakeSession(server)

        return DatabasesArea(self.client, self.cache, connector=connector)  # type: ignore[arg-type]

    async def reconcile(self) -> AreaResult:
        model = MicroservicePlatform.from_object(self.platform)
        result = await self.area.reconcile(self.platform, model)
        self._apply(result)
        return result

    def _apply(self, result: AreaResult) -> None:
        wanted = {(o["kind"], o["metadata"]["name"]) for o in result.objects}
        for kind, store in self.cache.stores.items():
            for key in list(store):
                if (kind, key[1]) not in wanted:
                    del store[key]  # type: ignore[attr-defined]
        for obj in result.objects:
            live = copy.deepcopy(obj)
            live["metadata"]["ownerReferences"] = [{"uid": UID, "controller": True}]
            self.cache.stores[obj["kind"]][(NS, obj["metadata"]["name"])] = live  # type: ignore[index]
        self.platform["status"] = {**self.platform.get("status", {}), **result.status}

    def secret(self, service: str) -> dict[str, Any] | None:
        return self.cache.get("Secret", NS, f"shop-{service}-db")

    def creds(self, service: str) -> Credentials:
        creds = from_secret(self.secret(service))
        assert creds is not None
        return creds

    def set_spec(self, change: Any) -> None:
        change(self.platform["spec"])


DB_SERVICES = ["gateway", "notifications", "orders", "payments", "users"]


async def test_first_pass_provisions_every_service_and_second_changes_nothing() -> None:
    w = World()
    first = await w.reconcile()
    assert first.condition.status == "True" and first.condition.reason == "DatabasesReady"
    assert sorted(e["service"] for e in first.status["databases"]) == DB_SERVICES
    assert all(e["ready"] and e["secret"] == f"shop-{e['service']}-db" for e in first.status["databases"])
    assert len(w.server.roles) == len(w.server.dbs) == len(DB_SERVICES)
    assert all(not d.public for d in w.server.dbs.values())
    orders = w.creds("orders")
    assert w.server.roles[orders.user].password == orders.password
    assert (orders.host, orders.port, orders.dbname) == ("10.9.8.7", 5433, orders.user)
    assert {o["kind"] for o in first.objects} == {"Secret", "NetworkPolicy"}
    assert {e.reason for e in first.events} == {"DatabaseProvisioned"}
    ddl, logins = w.server.ddl, w.server.logins
    secrets_before = {s: w.secret(s) for s in DB_SERVICES}

    second = await w.reconcile()
    assert w.server.ddl == ddl and w.server.logins == logins  # no DDL, not even a login check
    assert {s: w.secret(s) for s in DB_SERVICES} == secrets_before
    assert second.pod_annotations == first.pod_annotations and not second.events


async def test_no_secret_material_in_status_events_or_conditions() -> None:
    w = World()
    result = await w.reconcile()
    w.server.down = True
    down = await w.reconcile()
    text = repr((result.status, result.events, result.condition, down.status, down.condition, down.errors))
    for service in DB_SERVICES:
        assert w.creds(service).password not in text
    assert "adminpw" not in text


async def test_a_restarted_operator_checks_each_password_once_and_changes_nothing() -> None:
    w = World()
    await w.reconcile()
    w.area = w.new_area()  # memory lost
    ddl = w.server.ddl
    await w.reconcile()
    assert w.server.ddl == ddl and w.server.logins == len(DB_SERVICES)
    await w.reconcile()
    assert w.server.logins == len(DB_SERVICES)


async def test_deleted_secret_comes_back_with_the_same_password() -> None:
    w = World()
    await w.reconcile()
    before = w.creds("orders")
    del w.cache.stores["Secret"][(NS, "shop-orders-db")]  # type: ignore[attr-defined]
    ddl = w.server.ddl
    result = await w.reconcile()
    assert w.creds("orders") == before and w.server.ddl == ddl
    assert result.pod_annotations["orders"]  # unchanged checksum, so no rollout
    assert any("restored the Secret" in e.message for e in result.events)


async def test_deleted_secret_without_memory_rotates_server_and_secret_together() -> None:
    w = World()
    first = await w.reconcile()
    before = w.creds("orders")
    del w.cache.stores["Secret"][(NS, "shop-orders-db")]  # type: ignore[attr-defined]
    w.area = w.new_area()
    result = await w.reconcile()
    after = w.creds("orders")
    assert after.password != before.password and w.server.roles[after.user].password == after.password
    assert result.pod_annotations["orders"] != first.pod_annotations["orders"]
    assert result.pod_annotations["users"] == first.pod_annotations["users"]


async def test_secret_wins_when_the_server_has_another_password() -> None:
    w = World()
    await w.reconcile()
    orders = w.creds("orders")
    w.server.roles[orders.user].password = "changed-by-hand"
    w.area = w.new_area()  # nothing verified yet
    await w.reconcile()
    assert w.server.roles[orders.user].password == orders.password and w.creds("orders") == orders


async def test_rotation_annotation_rotates_once_per_token_and_only_the_named_services() -> None:
    w = World()
    first = await w.reconcile()
    before = {s: w.creds(s) for s in DB_SERVICES}
    w.platform["metadata"]["annotations"]["keelson.dev/rotate-credentials"] = "orders,users@2026-11-25T10:00Z"
    rotated = await w.reconcile()
    assert w.creds("orders").password != before["orders"].password
    assert w.server.roles[before["orders"].user].password == w.creds("orders").password
    assert w.creds("users").password != before["users"].password
    assert w.creds("payments") == before["payments"]
    assert rotated.pod_annotations["orders"] != first.pod_annotations["orders"]
    assert rotated.pod_annotations["payments"] == first.pod_annotations["payments"]
    assert {e.reason for e in rotated.events} == {"CredentialsRotated"}
    assert w.secret("orders")["metadata"]["annotations"]["keelson.dev/rotation-token"] == "2026-11-25T10:00Z"  # type: ignore[index]
    after = {s: w.creds(s) for s in DB_SERVICES}
    ddl = w.server.ddl
    again = await w.reconcile()  # the same value stays on the platform
    assert {s: w.creds(s) for s in DB_SERVICES} == after and w.server.ddl == ddl and not again.events
    w.platform["metadata"]["annotations"]["keelson.dev/rotate-credentials"] = "t2"  # every service
    await w.reconcile()
    assert all(w.creds(s).password != after[s].password for s in DB_SERVICES)


@pytest.mark.parametrize(
    ("break_it", "reason"),
    [
        (lambda w: setattr(w.server, "down", True), "ServerUnreachable"),
        (lambda w: setattr(w.server, "reject", True), "AdminCredentialsRejected"),
        (lambda w: w.client.secrets.pop("pg-admin"), "AdminSecretMissing"),
        (lambda w: w.client.secrets.update({"pg-admin": _secret(user="x")}), "AdminSecretInvalid"),
        (lambda w: setattr(w.server, "explode", True), "InternalError"),
    ],
)
async def test_failures_keep_secrets_and_annotations_and_report_the_reason(break_it: Any, reason: str) -> None:
    w = World()
    good = await w.reconcile()
    secrets = {s: w.secret(s) for s in DB_SERVICES}
    break_it(w)
    bad = await w.reconcile()
    assert bad.condition.status == "False" and bad.condition.reason == reason
    assert bad.retry or reason == "AdminSecretInvalid"
    assert {s: w.secret(s) for s in DB_SERVICES} == secrets  # still desired: not pruned, not changed
    assert bad.pod_annotations == good.pod_annotations
    assert {(o["kind"], o["metadata"]["name"]) for o in bad.objects} == {
        (o["kind"], o["metadata"]["name"]) for o in good.objects
    }
    assert all(not e["ready"] for e in bad.status["databases"])
    # ... and it recovers by itself once the cause is gone.
    w.server.down = w.server.reject = w.server.explode = False
    w.client.secrets["pg-admin"] = _secret(uri=ADMIN_URI)
    healed = await w.reconcile()
    assert healed.condition.status == "True" and {s: w.secret(s) for s in DB_SERVICES} == secrets


async def test_admin_secret_with_separate_keys() -> None:
    w = World()
    w.client.secrets["pg-admin"] = _secret(host="10.9.8.7", port="5433", user="admin", password="adminpw")
    assert (await w.reconcile()).condition.status == "True"


def _drop_orders_database(spec: dict[str, Any]) -> None:
    del next(s for s in spec["services"] if s["name"] == "orders")["database"]


async def test_removing_a_database_under_retain_keeps_it_and_says_where_once() -> None:
    w = World()
    await w.reconcile()
    name = w.creds("orders").user
    w.set_spec(_drop_orders_database)
    result = await w.reconcile()
    assert name in w.server.dbs and name in w.server.roles
    assert w.secret("orders") is None  # the Secret may go
    (entry,) = [e for e in result.status["databases"] if e["service"] == "orders"]
    assert entry["message"].startswith("retained:") and "10.9.8.7:5433" in entry["message"] and not entry["ready"]
    (event,) = result.events
    assert event.reason == "DatabaseRetained" and name in event.message
    again = await w.reconcile()
    assert not again.events and any(e["service"] == "orders" for e in again.status["databases"])
    assert "orders" not in again.pod_annotations


async def test_readding_a_retained_database_adopts_it() -> None:
    w = World()
    await w.reconcile()
    w.set_spec(_drop_orders_database)
    await w.reconcile()
    w.platform["spec"] = example()["spec"]
    result = await w.reconcile()
    assert result.condition.status == "True" and len(w.server.dbs) == len(DB_SERVICES)
    orders = w.creds("orders")
    assert w.server.roles[orders.user].password == orders.password


async def test_removing_a_database_under_delete_drops_it() -> None:
    w = World(lambda spec: spec["databases"].update({"deletionPolicy": "Delete"}))
    await w.reconcile()
    name = w.creds("orders").user
    assert w.area.needs_cleanup(MicroservicePlatform.from_object(w.platform))
    w.set_spec(_drop_orders_database)
    w.server.down = True
    pending = await w.reconcile()
    assert name in w.server.dbs and w.secret("orders") is not None  # kept as the marker of work to do
    assert pending.retry
    w.server.down = False
    result = await w.reconcile()
    assert name not in w.server.dbs and name not in w.server.roles
    assert [e.reason for e in result.events] == ["DatabaseDropped"]
    assert w.secret("orders") is None and all(e["service"] != "orders" for e in result.status["databases"])


async def test_cleanup_drops_everything_or_reports_and_holds() -> None:
    w = World(lambda spec: spec["databases"].update({"deletionPolicy": "Delete"}))
    await w.reconcile()
    model = MicroservicePlatform.from_object(w.platform)
    w.server.down = True
    failed = await w.area.cleanup(w.platform, model)
    assert not failed.done and failed.condition.reason == "CleanupFailed" and failed.retry
    w.server.down = False
    done = await w.area.cleanup(w.platform, model)
    assert done.done and not w.server.dbs and not w.server.roles


async def test_cleanup_after_the_admin_secret_went_with_the_namespace() -> None:
    w = World(lambda spec: spec["databases"].update({"deletionPolicy": "Delete"}))
    await w.reconcile()  # reads the admin Secret while it exists
    w.client.secrets.pop("pg-admin")
    w.platform["metadata"]["deletionTimestamp"] = "2026-12-06T08:00:00Z"
    done = await w.area.cleanup(w.platform, MicroservicePlatform.from_object(w.platform))
    assert done.done and not w.server.dbs and not w.server.roles

    # Never read by this process (it restarted): the condition says how to unblock.
    fresh = World(lambda spec: spec["databases"].update({"deletionPolicy": "Delete"}))
    fresh.client.secrets.pop("pg-admin")
    fresh.platform["metadata"]["deletionTimestamp"] = "2026-12-06T08:00:00Z"
    held = await fresh.area.cleanup(fresh.platform, MicroservicePlatform.from_object(fresh.platform))
    assert not held.done and held.retry
    assert "remove the platform's finalizer keelson.dev/cleanup" in held.condition.message


async def test_retain_needs_no_finalizer() -> None:
    w = World()
    assert not w.area.needs_cleanup(MicroservicePlatform.from_object(w.platform))


async def test_someone_elses_database_of_the_same_name_is_not_touched() -> None:
    w = World()
    await w.reconcile()
    orders = w.creds("orders")
    w.server.roles[orders.user].comment = "keelson.dev/owner=other/shop/orders"
    w.area = w.new_area()
    result = await w.reconcile()
    assert result.condition.reason == "DatabaseConflict" and "orders" in result.condition.message
    assert w.secret("orders") is not None  # its Secret is kept, not pruned
    w.set_spec(lambda spec: spec["databases"].update({"deletionPolicy": "Delete"}))
    w.set_spec(_drop_orders_database)
    await w.reconcile()
    assert orders.user in w.server.dbs  # not dropped either


async def test_public_connect_granted_by_hand_is_revoked_again() -> None:
    w = World()
    await w.reconcile()
    name = w.creds("payments").user
    w.server.dbs[name].public = True
    await w.reconcile()
    assert w.server.dbs[name].public is False


async def test_no_databases_no_server() -> None:
    w = World(lambda spec: [s.pop("database", None) for s in spec["services"]])
    w.client.secrets.clear()
    result = await w.reconcile()
    assert result.condition.reason == "NoDatabases" and result.condition.status == "True"
    assert result.status == {} and not result.objects


def _cnpg(policy: str = "Retain") -> Any:
    def mutate(spec: dict[str, Any]) -> None:
        spec["databases"] = {"provider": "cloudnative-pg", "deletionPolicy": policy}

    return mutate


async def test_cnpg_secret_first_then_role_and_readiness_from_the_database_status() -> None:
    w = World(_cnpg())
    first = await w.reconcile()
    kinds = sorted({o["kind"] for o in first.objects})
    assert kinds == ["Cluster", "Database", "Secret"]
    cluster = next(o for o in first.objects if o["kind"] == "Cluster")
    assert "managed" not in cluster["spec"]  # the Secrets do not exist yet
    assert first.condition.reason == "DatabasesPending"
    secret = w.secret("orders")
    assert secret is not None and secret["metadata"]["labels"]["cnpg.io/reload"] == "true"
    assert w.creds("orders").host == "shop-db-rw.shop-ns.svc"
    second = await w.reconcile()
    cluster = next(o for o in second.objects if o["kind"] == "Cluster")
    assert len(cluster["spec"]["managed"]["roles"]) == len(DB_SERVICES)
    assert w.creds("orders") == from_secret(secret)  # unchanged password
    for db in w.cache.stores["Database"].values():
        db["status"] = {"applied": True}
    ready = await w.reconcile()
    assert ready.condition.status == "True" and all(e["ready"] for e in ready.status["databases"])


async def test_external_secrets_are_checked_for_existence_and_keys() -> None:
    def external(spec: dict[str, Any]) -> None:
        spec["databases"] = {"provider": "external"}
        for svc in spec["services"]:
            if "database" in svc:
                svc["database"]["secretRef"] = {"name": f"{svc['name']}-pg"}

    w = World(external)
    w.client.secrets["orders-pg"] = _secret(uri="postgresql://o:p@pg.data.svc:5432/orders")
    w.client.secrets["users-pg"] = _secret(host="10.0.0.1")
    result = await w.reconcile()
    assert result.condition.status == "False" and result.condition.reason == "SecretMissing"
    entries = {e["service"]: e for e in result.status["databases"]}
    assert entries["orders"]["ready"] and not entries["users"]["ready"] and "no key uri" in entries["users"]["message"]
    policy = next(o for o in result.objects if o["metadata"]["name"] == "orders.database")
    assert policy["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 5432}]
    for name in ("users-pg", "payments-pg", "notifications-pg", "gateway-pg"):
        w.client.secrets[name] = _secret(uri="postgresql://x:y@10.0.0.2/db")
    assert (await w.reconcile()).condition.status == "True"
