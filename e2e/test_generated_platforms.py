"""Any valid platform converges and then goes quiet: generated platforms, on the real control
plane, with the operator holding only the chart's permissions.

For each generated platform (tests/cases/generated.py): admission accepts it; it reaches Ready for
its generation; the objects it owns are exactly the rendered set (with the databases area's
Secret and egress policy per database); its NetworkPolicies, evaluated, allow exactly the declared
call graph. Then transitions from one generated platform to a generated change of it (services
added, removed and renamed, calls, autoscaling, replicas, gateway kind, Kafka provider) converge
to exactly the new set, with no orphans. Last, with every one of those platforms still alive, the
operator makes zero writes to them over an idle window spanning resyncs (from the audit log).

CI runs a bounded, derandomized number (KEELSON_GENERATED_EXAMPLES, default 25 and 25); the soak
profile is documented in docs/testing.md. What the stack cannot back is left out of the draws and
covered elsewhere: CloudNativePG (no operator runs its Clusters here; objects and admission in
e2e/test_drift_roundtrip.py) and Strimzi (no Topic Operator; e2e/test_topics.py).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e.conftest import RESYNC_SECONDS
from e2e.kube import Kube, eventually, operator_writes, reconcile_count, utcnow
from e2e.netpolicy import connects
from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.controller.reconciler import RELEASE_ANNOTATION
from keelson.databases.naming import secret_name
from keelson.devstack.stack import LocalStack
from keelson.kafkausers import plan_users
from keelson.kube.resources import CHILD_KINDS
from keelson.render import RenderContext, render_platform
from keelson.render.databases import egress_policy_name
from keelson.render.labels import NAME_LABEL, PLATFORM_LABEL
from keelson.tenancy import attach
from tests.cases.generated import Target, platforms, team_services

pytestmark = [pytest.mark.cluster, pytest.mark.kafka, pytest.mark.postgres]

EXAMPLES = int(os.environ.get("KEELSON_GENERATED_EXAMPLES", "25"))
_counter = itertools.count()
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("KEELSON_HYPOTHESIS_RANDOM") != "1",
    suppress_health_check=list(HealthCheck),
)
# The kinds the generated platforms can own here: the built-in ones, the Gateway API's HTTPRoute and
# the Prometheus Operator's (their CRDs are installed for the module: `third_party_kinds`).
KINDS = [k for k in CHILD_KINDS if k.group not in ("kafka.strimzi.io", "postgresql.cnpg.io")]


@dataclass
class Alive:
    """The generated platforms left running for the idle check at the end of the module."""

    namespaces: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def alive(kube: Kube, third_party_kinds: None) -> Iterator[Alive]:
    state = Alive()
    yield state
    for namespace in state.namespaces:
        # Their databases stay on the throwaway server: a namespace's deletion takes the admin
        # Secret that a Delete policy's cleanup would need, and the finalizer would hold it forever.
        kube.run("annotate", "msp", "--all", "-n", namespace, f"{RELEASE_ANNOTATION}=true", check=False)
        kube.run("delete", "namespace", namespace, "--wait=false", check=False)


def stack_target(stack: LocalStack) -> Target:
    return Target(
        max_services=20,
        kafka_providers=("none", "admin"),
        database_providers=("postgres",),
        kafka_bootstrap=stack.kafka_bootstrap,
        kafka_security={k: v for k, v in stack.kafka_settings().items() if k != "bootstrapServers"},
        max_replication_factor=1,  # one broker
        # Sizing for millions of users asks for tens of replicas per service; kept for the render
        # tests, left out here so that fifty platforms' pods fit the stack's simulated nodes.
        daily_users=(1, 10_000),
    )


def _new_namespace(kube: Kube, stack: LocalStack) -> str:
    namespace = kube.namespace(f"gen-{os.getpid() % 10000}-{next(_counter)}")
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pg-admin"}}
    kube.apply(namespace, {**secret, "stringData": {"uri": stack.postgres_admin_uri}})
    stack.apply_kafka_secrets(namespace)
    return namespace


def _ready_for_generation(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    msp = kube.get("msp", name, namespace)
    if not msp:
        return None
    status = msp.get("status") or {}
    if status.get("observedGeneration") != msp["metadata"]["generation"]:
        return None
    ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
    return (
        msp
        if ready and ready["status"] == "True" and ready["observedGeneration"] == status["observedGeneration"]
        else None
    )


def _converge(kube: Kube, namespace: str, doc: dict[str, Any]) -> dict[str, Any]:
    # JSON, not YAML: kubectl reads YAML 1.1, where a service named `y` or `n` is a boolean (found
    # by this test; a user writing such a name must quote it, and admission says so).
    proc = kube.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(doc), check=False)
    assert proc.returncode == 0, f"admission refused a generated platform: {proc.stderr}"
    name = doc["metadata"]["name"]

    def ready() -> dict[str, Any] | None:
        return _ready_for_generation(kube, namespace, name)

    try:
        return eventually(ready, timeout=180, interval=1, what=f"{name} Ready for its generation")
    except AssertionError:
        msp = kube.get("msp", name, namespace) or {}
        raise AssertionError(
            f"not Ready: {json.dumps((msp.get('status') or {}).get('conditions'), indent=1)}"
        ) from None


def expected_children(doc: dict[str, Any], namespace: str) -> set[tuple[str, str]]:
    model = MicroservicePlatform.from_object(doc)
    ctx = RenderContext(name=model.metadata.name, namespace=namespace, spec=model.spec)
    keys = {(o["kind"], o["metadata"]["name"]) for o in render_platform(ctx)}
    for svc in ctx.services:
        if svc.has_database:
            keys |= {("Secret", secret_name(ctx.name, svc.name)), ("NetworkPolicy", egress_policy_name(svc.name))}
    # The Kafka users area's: each publishing or subscribing service's credentials.
    keys |= {("Secret", user.secret) for user in plan_users(model.spec, namespace=namespace, platform=ctx.name)}
    return keys


def owned_children(kube: Kube, namespace: str, uid: str) -> dict[tuple[str, str], dict[str, Any]]:
    kinds = ",".join(k.plural for k in KINDS)
    items = kube.list(kinds, namespace)
    return {
        (o["kind"], o["metadata"]["name"]): o
        for o in items
        if any(ref.get("uid") == uid for ref in o["metadata"].get("ownerReferences") or [])
    }


def allowed_edges(doc: dict[str, Any], namespace: str, policies: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """The call edges the platform's NetworkPolicies, evaluated, allow (e2e/netpolicy.py)."""
    model = MicroservicePlatform.from_object(doc)
    ctx = RenderContext(name=model.metadata.name, namespace=namespace, spec=model.spec)
    pods = {s.name: (namespace, {NAME_LABEL: s.name, PLATFORM_LABEL: ctx.name}) for s in ctx.services}
    ports = {s.name: s.port for s in ctx.services}
    return {(a, b) for a in pods for b in pods if a != b and connects(policies, pods[a], pods[b], ports[b])}


def declared_edges(doc: dict[str, Any]) -> set[tuple[str, str]]:
    spec = MicroservicePlatform.from_object(doc).spec
    edges = {(s.name, c) for s in spec.services for c in s.calls or ()}
    gateway = spec.gateway.service if spec.gateway else None
    if gateway:
        edges |= {(gateway, s.name) for s in spec.services if s.expose and s.name != gateway}
    return edges


def check_converged(kube: Kube, namespace: str, doc: dict[str, Any], msp: dict[str, Any]) -> None:
    children = owned_children(kube, namespace, msp["metadata"]["uid"])
    expected = expected_children(doc, namespace)
    assert set(children) == expected, {"missing": expected - set(children), "orphans": set(children) - expected}
    policies = [o for (kind, _), o in children.items() if kind == "NetworkPolicy"]
    assert allowed_edges(doc, namespace, policies) == declared_edges(doc)


# --- the tests ------------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_any_generated_platform_converges_exactly(kube: Kube, stack: LocalStack, alive: Alive, data: Any) -> None:
    doc = data.draw(platforms(stack_target(stack)), label="platform")
    namespace = _new_namespace(kube, stack)
    alive.namespaces.append(namespace)
    msp = _converge(kube, namespace, doc)
    check_converged(kube, namespace, doc, msp)


def _renamed(doc: dict[str, Any], old: str, new: str) -> None:
    for svc in doc["spec"]["services"]:
        if svc["name"] == old:
            svc["name"] = new
        svc["calls"] = [new if c == old else c for c in svc.get("calls") or []]
    gateway = doc["spec"].get("gateway")
    if gateway and gateway.get("service") == old:
        gateway["service"] = new


@SETTINGS
@given(data=st.data())
def test_any_generated_change_converges_to_exactly_the_new_set(
    kube: Kube, stack: LocalStack, alive: Alive, data: Any
) -> None:
    target = stack_target(stack)
    before = data.draw(platforms(target, name="t"), label="before")
    after = data.draw(platforms(target, name="t"), label="after")
    # Keep the domain (immutable) and, half the time, the services' names, so that the change is
    # an edit of the same services (renamed, recalled, rescaled) rather than a replacement.
    after["spec"]["domain"] = before["spec"]["domain"]
    if data.draw(st.booleans(), label="same names"):
        old = [s["name"] for s in before["spec"]["services"]]
        # Two steps, so that no name is taken twice on the way.
        for i, svc in enumerate(list(after["spec"]["services"])):
            _renamed(after, svc["name"], f"tmp-{i}")
        for i, name in enumerate(old[: len(after["spec"]["services"])]):
            _renamed(after, f"tmp-{i}", f"{name[:60]}-x" if data.draw(st.booleans(), label="rename") else name)
    # Partitions only grow (admission refuses a decrease).
    parts = before["spec"]["kafka"].get("partitions")
    if parts is not None:
        after["spec"]["kafka"]["partitions"] = max(parts, after["spec"]["kafka"].get("partitions") or parts)
    namespace = _new_namespace(kube, stack)
    alive.namespaces.append(namespace)
    _converge(kube, namespace, before)
    kube.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(after))
    msp = _converge(kube, namespace, after)
    check_converged(kube, namespace, after, msp)


def test_zz_every_generated_platform_goes_quiet(kube: Kube, stack: LocalStack, alive: Alive) -> None:
    """With all of them still there: zero operator writes to any of them across two resyncs."""
    assert alive.namespaces, "the generated tests ran first"
    since, started = utcnow(), time.monotonic()
    start = reconcile_count(stack.ports["operator-metrics"])
    # A resync reconciles every platform: the window spans two of them (by the clock, and by the
    # operator's count of passes, at least two per generated platform).
    window = 2 * float(os.environ.get("KEELSON_RESYNC_SECONDS", RESYNC_SECONDS)) + 2
    passes = 2 * len(alive.namespaces)
    eventually(
        lambda: (
            time.monotonic() - started >= window and reconcile_count(stack.ports["operator-metrics"]) >= start + passes
        ),
        timeout=window + 120,
        interval=1,
        what=f"an idle window of {window:.0f}s and {passes} reconcile passes",
    )
    writes = [w for ns in alive.namespaces for w in operator_writes(stack.audit_log, since=since, namespace=ns)]
    summary = [(w["verb"], w["objectRef"].get("resource"), w["objectRef"].get("name")) for w in writes]
    assert writes == [], f"writes to idle platforms: {summary[:20]}"


# --- services teams attach (PlatformService, spec.tenancy) --------------------------------------


def _team_expected(doc: dict[str, Any], namespace: str, teams: list[dict[str, Any]]) -> RenderContext:
    """The platform with its teams' services attached, as the operator works it out."""
    model = MicroservicePlatform.from_object(doc)
    labels = {t["metadata"]["namespace"]: {} for t in teams}
    attachment = attach(model.spec, (namespace, doc["metadata"]["name"]), teams, labels)
    assert all(v.accepted for v in attachment.verdicts), attachment.verdicts
    return RenderContext(
        name=doc["metadata"]["name"], namespace=namespace, spec=attachment.spec, placements=attachment.placements
    )


def _team_children(ctx: RenderContext, service: str) -> set[tuple[str, str]]:
    """What the PlatformService of `service` owns: its rendered objects in its namespace, its
    database's Secret and egress policy, its Kafka credentials."""
    here = ctx.namespace_of(service)
    keys = {
        (o["kind"], o["metadata"]["name"])
        for o in render_platform(ctx)
        if o["metadata"]["namespace"] == here and o["metadata"]["labels"].get(NAME_LABEL) == service
    }
    if ctx.service(service).has_database:
        keys |= {("Secret", secret_name(ctx.name, service)), ("NetworkPolicy", egress_policy_name(service))}
    for user in plan_users(ctx.spec, namespace=ctx.namespace, platform=ctx.name):
        if user.service == service:
            keys.add(("Secret", user.secret))
    return keys


@SETTINGS
@given(data=st.data())
def test_any_generated_team_services_attach_exactly(kube: Kube, stack: LocalStack, alive: Alive, data: Any) -> None:
    """A generated platform with generated PlatformServices in two team namespaces: each is
    accepted and Ready; each owns exactly its service's objects in its namespace; the platform's
    own children are exactly as without them plus their edges; the policies of all three
    namespaces, evaluated, allow exactly the declared calls, across namespaces too."""
    target = stack_target(stack)
    doc = data.draw(platforms(target), label="platform")
    doc["spec"]["tenancy"] = {"namespaceSelector": {}, "expose": True, "subscribe": True}
    namespace = _new_namespace(kube, stack)
    team_namespaces = [_new_namespace(kube, stack), _new_namespace(kube, stack)]
    alive.namespaces += [namespace, *team_namespaces]
    teams = data.draw(team_services(doc, team_namespaces, target), label="teams")
    for team in teams:
        team["metadata"]["namespace"] = team.pop("namespace")
        team["spec"]["platformRef"]["namespace"] = namespace
        team["metadata"].update(uid=team["metadata"]["name"], generation=1)
    ctx = _team_expected(doc, namespace, teams)
    msp = _converge(kube, namespace, doc)
    for team in teams:
        body = {k: v for k, v in team.items() if k != "metadata"}
        meta = {"name": team["metadata"]["name"], "namespace": team["metadata"]["namespace"]}
        proc = kube.run("apply", "-f", "-", stdin=json.dumps({**body, "metadata": meta}), check=False)
        assert proc.returncode == 0, f"admission refused a generated PlatformService: {proc.stderr}"

    def attached(team: dict[str, Any]) -> dict[str, Any] | None:
        obj = kube.get("platformservice", team["metadata"]["name"], team["metadata"]["namespace"]) or {}
        conditions = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
        ok = conditions.get("Accepted", {}).get("status") == "True"
        return obj if ok and conditions.get("Ready", {}).get("status") == "True" else None

    live = {
        t["metadata"]["name"]: eventually(
            lambda t=t: attached(t), timeout=180, interval=1, what=f"{t['metadata']['name']} attached and Ready"
        )
        for t in teams
    }
    msp = _converge(kube, namespace, doc)
    children = owned_children(kube, namespace, msp["metadata"]["uid"])
    # The platform's own children are the same set as without the teams (their content, such as
    # policy peers and the gateway's routes, follows them).
    expected = expected_children(doc, namespace)
    assert set(children) == expected, {"missing": expected - set(children), "orphans": set(children) - expected}
    for team in teams:
        name, team_ns = team["metadata"]["name"], team["metadata"]["namespace"]
        owned = owned_children(kube, team_ns, live[name]["metadata"]["uid"])
        want = _team_children(ctx, name)
        assert set(owned) == want, {"service": name, "missing": want - set(owned), "orphans": set(owned) - want}
    policies = [p for ns in {namespace, *team_namespaces} for p in kube.list("networkpolicies", ns)]
    pods = {s.name: (ctx.namespace_of(s.name), {NAME_LABEL: s.name, PLATFORM_LABEL: ctx.name}) for s in ctx.services}
    ports = {s.name: s.port for s in ctx.services}
    allowed = {(a, b) for a in pods for b in pods if a != b and connects(policies, pods[a], pods[b], ports[b])}
    declared = {(s.name, c) for s in ctx.spec.services for c in s.calls or ()}
    gateway = ctx.spec.gateway.service if ctx.spec.gateway else None
    if gateway:
        declared |= {(gateway, s.name) for s in ctx.spec.services if s.expose and s.name != gateway}
    assert allowed == declared
