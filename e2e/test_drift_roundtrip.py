"""The drift check agrees with the real kube-apiserver, for any platform the API accepts.

For each generated platform: admission accepts it (CEL and pydantic agree), every object the
operator would write, as it would write it (server-side apply, its field manager, the hash
annotation), is accepted by the API server, and read back it compares equal: `needs_apply` says
"no change". A renderer or field whose stored form differs from what we send (an empty list the
server omits, a quantity it rewrites, a field it defaults to something else) fails here, naming
the fields, instead of becoming a write loop in someone's cluster.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from e2e.kube import Kube
from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.controller.drift import drifted_fields, needs_apply, with_hash
from keelson.databases.credentials import Credentials
from keelson.devstack.stack import LocalStack
from keelson.kube.client import ApiError, KubeClient
from keelson.kube.resources import kind_of
from keelson.render import RenderContext, render_platform
from keelson.render.databases import render_database_egress, render_database_secret
from tests.cases.generated import Target, platforms

pytestmark = pytest.mark.cluster

EXAMPLES = int(os.environ.get("KEELSON_ROUNDTRIP_EXAMPLES", "40"))
_counter = itertools.count()


@pytest.fixture(scope="module")
def admin_client(stack: LocalStack) -> Iterator[Any]:
    cfg = k8s_client.Configuration()
    k8s_config.load_kube_config(config_file=str(stack.admin_kubeconfig), client_configuration=cfg)
    yield cfg


def desired_objects(doc: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    """What the reconciler applies for this platform: the rendered children and the databases
    area's objects (a credentials Secret and an egress policy per database), each with its hash."""
    model = MicroservicePlatform.from_object(doc)
    ctx = RenderContext(name=model.metadata.name, namespace=namespace, spec=model.spec)
    objects = render_platform(ctx)
    creds = Credentials(host="10.1.2.3", port=5432, dbname="d", user="u", password="p")
    for svc in ctx.services:
        if svc.has_database:
            objects.append(render_database_egress(ctx, svc.name, creds.host, creds.port))
            objects.append(render_database_secret(ctx, svc.name, creds, token=None, extra_labels={}))
    return [with_hash(o) for o in objects]


async def _roundtrip(cfg: Any, objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    client = KubeClient(cfg)
    writes = asyncio.Semaphore(8)  # the operator's own concurrency

    async def one(obj: dict[str, Any]) -> tuple[str, list[str]]:
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        async with writes:
            try:
                await client.apply(obj)
            except ApiError as exc:
                return label, [f"refused by the API server: {exc.message}"]
            live = await client.get(kind_of(obj), obj["metadata"]["namespace"], obj["metadata"]["name"])
        if needs_apply(obj, live):
            return label, drifted_fields(obj, live)
        return label, []

    try:
        results = await asyncio.gather(*(one(o) for o in objects))
    finally:
        await client.aclose()
    return {label: fields for label, fields in results if fields}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("KEELSON_HYPOTHESIS_RANDOM") != "1",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(doc=platforms(Target(max_services=30)))
def test_every_object_of_any_platform_reads_back_as_no_change(
    kube: Kube, admin_client: Any, third_party_kinds: None, doc: dict[str, Any]
) -> None:
    namespace = kube.namespace(f"roundtrip-{os.getpid() % 10000}-{next(_counter)}")
    try:
        # Admission: CEL must agree with pydantic. A dry run, so that no operator reconciles it.
        proc = kube.run("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=json.dumps(doc), check=False)
        assert proc.returncode == 0, f"admission refused a platform pydantic accepts: {proc.stderr}"
        drift = asyncio.run(_roundtrip(admin_client, desired_objects(doc, namespace)))
        assert not drift, "objects that would be re-applied forever:\n" + json.dumps(drift, indent=1)
    finally:
        kube.run("delete", "namespace", namespace, "--wait=false", check=False)


def test_the_loop_shapes_of_issue_9_read_back_as_no_change(kube: Kube, admin_client: Any, namespace: str) -> None:
    """The two write loops seen in the audit log (a service nobody calls, `ingress: []`, and an env
    entry with an empty value) and what the property test found since: kept as regressions."""
    doc = {
        "apiVersion": "keelson.dev/v1alpha1",
        "kind": "MicroservicePlatform",
        "metadata": {"name": "loops"},
        "spec": {
            "domain": "shop",
            "services": [
                {"name": "lonely", "image": "registry.example/app:1", "env": [{"name": "EMPTY", "value": ""}]},
                # Found by the property test: the server rounds 100n CPU up to 1m.
                {"name": "quantities", "image": "x", "resources": {"requests": {"cpu": "100n", "memory": "1024Mi"}}},
                {"name": "halves", "image": "x", "resources": {"requests": {"cpu": "0.5"}, "limits": {"cpu": 1}}},
            ],
        },
    }
    objects = desired_objects(doc, namespace)
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "lonely")
    assert policy["spec"]["ingress"] == []  # the shape that looped
    assert asyncio.run(_roundtrip(admin_client, objects)) == {}
