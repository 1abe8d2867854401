"""A PostgreSQL server that hangs never holds the databases area past its deadline: the pass is
abandoned with a clear condition, retried, and the Secrets the pods use are kept as they are."""

from __future__ import annotations

import base64
import time
from typing import Any, Literal

import pytest

from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.controller.cache import DictCache
from keelson.controller.database_area import DatabasesArea
from keelson.kube.resources import Kind
from tests.cases.invalid_platforms import example
from tests.fakes.hung_postgres import HungPostgres

NS, UID = "shop-ns", "uid-1"
DEADLINE = 1.0


class AdminSecret:
    def __init__(self, uri: str) -> None:
        self.data = {"uri": base64.b64encode(uri.encode()).decode()}

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        assert (kind.kind, namespace, name) == ("Secret", NS, "pg-admin")
        return {"data": self.data}


def _live_secret(service: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"shop-{service}-db",
            "namespace": NS,
            "labels": {"app.kubernetes.io/managed-by": "keelson"},
            "ownerReferences": [{"uid": UID, "controller": True}],
        },
        "type": "kubernetes.io/basic-auth",
        "data": {"username": base64.b64encode(b"someone").decode(), "password": base64.b64encode(b"pw").decode()},
    }


@pytest.mark.parametrize("mode", ["after_login", "silent"])
async def test_a_hung_server_fails_the_area_within_its_deadline(mode: Literal["silent", "after_login"]) -> None:
    doc = example()
    doc["metadata"].update({"namespace": NS, "uid": UID, "annotations": {}})
    cache = DictCache({"Secret": {(NS, "shop-orders-db"): _live_secret("orders")}, "NetworkPolicy": {}})
    with HungPostgres(mode) as server:
        area = DatabasesArea(AdminSecret(server.uri), cache, deadline=DEADLINE)
        started = time.monotonic()
        result = await area.reconcile(doc, MicroservicePlatform.from_object(doc))
        took = time.monotonic() - started
        assert server.connections >= 1 and server.logins == (1 if mode == "after_login" else 0)
    assert took < DEADLINE + 0.5, took
    cond = result.condition
    assert (cond.status, cond.reason) == ("False", "ServerUnresponsive")
    assert f"127.0.0.1:{server.port}" in cond.message and "did not answer within 1 s" in cond.message
    assert result.retry
    # The pods keep their credentials: the live Secret is returned as it is, so it is not pruned.
    kept = [o for o in result.objects if o["kind"] == "Secret"]
    assert [o["metadata"]["name"] for o in kept] == ["shop-orders-db"]
    assert kept[0]["data"] == _live_secret("orders")["data"]
