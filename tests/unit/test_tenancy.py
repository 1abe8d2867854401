"""PlatformServices: which a platform accepts (keelson.tenancy), and what attaching renders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from keelson.api.platformservice import PlatformServiceSpec
from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.render import RenderContext, render_platform
from keelson.render.labels import PLATFORM_NAMESPACE_LABEL
from keelson.tenancy import attach
from tests.cases.invalid_platforms import example

PLATFORM = ("shop", "shop")
LABELS = {"team-a": {"keelson.dev/tenant": "yes"}, "team-b": {}, "team-c": {"keelson.dev/tenant": "yes"}}


def platform(tenancy: dict[str, Any] | None = None) -> MicroservicePlatform:
    doc = example()
    doc["metadata"]["namespace"] = "shop"
    if tenancy is not None:
        doc["spec"]["tenancy"] = tenancy
    return MicroservicePlatform.from_object(doc)


TENANCY = {"namespaceSelector": {"matchLabels": {"keelson.dev/tenant": "yes"}}}


def team_service(namespace: str, name: str, created: str = "2026-01-01T00:00:00Z", **spec: Any) -> dict[str, Any]:
    body = {"name": name, "image": "team/app:1", "platformRef": {"name": "shop", "namespace": "shop"}, **spec}
    return {
        "apiVersion": "keelson.dev/v1alpha1",
        "kind": "PlatformService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "generation": 1,
            "creationTimestamp": created,
        },
        "spec": body,
    }


def verdicts(attachment: Any) -> dict[str, tuple[bool, str]]:
    return {f"{v.namespace}/{v.name}": (v.accepted, v.reason) for v in attachment.verdicts}


def test_a_platform_without_tenancy_accepts_nothing() -> None:
    got = attach(platform().spec, PLATFORM, [team_service("team-a", "search")], LABELS)
    assert verdicts(got) == {"team-a/search": (False, "NamespaceNotAllowed")}
    assert "no spec.tenancy" in got.verdicts[0].message
    assert [s.name for s in got.spec.services] == [s.name for s in platform().spec.services]


def test_namespaces_are_selected_by_their_labels() -> None:
    got = attach(
        platform(TENANCY).spec,
        PLATFORM,
        [team_service("team-a", "search"), team_service("team-b", "reviews"), team_service("nowhere", "ghost")],
        LABELS,
    )
    assert verdicts(got) == {
        "team-a/search": (True, "Attached"),
        "team-b/reviews": (False, "NamespaceNotAllowed"),
        "nowhere/ghost": (False, "NamespaceNotAllowed"),
    }
    assert got.placements["search"].namespace == "team-a"
    assert got.spec.services[-1].name == "search"
    refused = next(v for v in got.verdicts if v.name == "reviews")
    assert refused.message == "namespace team-b does not match spec.tenancy.namespaceSelector of platform shop/shop"


def test_the_namespace_name_label_is_always_there() -> None:
    tenancy = {
        "namespaceSelector": {
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-b"]}]
        }
    }
    got = attach(platform(tenancy).spec, PLATFORM, [team_service("team-b", "reviews")], LABELS)
    assert verdicts(got) == {"team-b/reviews": (True, "Attached")}


def test_a_name_goes_to_the_platform_then_to_the_oldest() -> None:
    got = attach(
        platform(TENANCY).spec,
        PLATFORM,
        [
            team_service("team-c", "search", created="2026-02-01T00:00:00Z"),
            team_service("team-a", "search", created="2026-01-01T00:00:00Z"),
            team_service("team-a", "orders"),
        ],
        LABELS,
    )
    assert verdicts(got) == {
        "team-a/search": (True, "Attached"),
        "team-c/search": (False, "NameTaken"),
        "team-a/orders": (False, "NameTaken"),
    }
    messages = {v.namespace + "/" + v.name: v.message for v in got.verdicts}
    assert messages["team-c/search"] == "service name search is taken by PlatformService team-a/search"
    assert messages["team-a/orders"] == "service name orders is taken by the platform's service orders"


@pytest.mark.parametrize(
    ("spec", "reason", "allowed"),
    [
        ({"expose": {"path": "/search"}}, "ExposeNotAllowed", {"expose": True}),
        ({"subscribes": ["order.created"]}, "SubscribeNotAllowed", {"subscribe": True}),
        (
            {"components": [{"name": "cache", "type": "redis@1"}]},
            "ComponentTypeNotAllowed",
            {"componentTypes": ["redis"]},
        ),
    ],
)
def test_what_a_team_may_do_is_the_platforms_to_allow(
    spec: dict[str, Any], reason: str, allowed: dict[str, Any]
) -> None:
    refused = attach(platform(TENANCY).spec, PLATFORM, [team_service("team-a", "search", **spec)], LABELS)
    assert verdicts(refused) == {"team-a/search": (False, reason)}
    accepted = attach(
        platform({**TENANCY, **allowed}).spec, PLATFORM, [team_service("team-a", "search", **spec)], LABELS
    )
    assert verdicts(accepted) == {"team-a/search": (True, "Attached")}


def test_a_team_subscribes_to_its_own_namespaces_events_without_asking() -> None:
    got = attach(
        platform(TENANCY).spec,
        PLATFORM,
        [
            team_service("team-a", "search", publishes=["search.indexed"]),
            team_service("team-a", "ranker", subscribes=["search.indexed"]),
            team_service("team-c", "stats", subscribes=["search.indexed"]),
        ],
        LABELS,
    )
    assert verdicts(got) == {
        "team-a/search": (True, "Attached"),
        "team-a/ranker": (True, "Attached"),
        "team-c/stats": (False, "SubscribeNotAllowed"),
    }


def test_calls_between_attached_services_are_accepted_in_any_order() -> None:
    both = [team_service("team-a", "search", calls=["ranker"]), team_service("team-c", "ranker", calls=["search"])]
    for candidates in (both, both[::-1]):
        got = attach(platform(TENANCY).spec, PLATFORM, candidates, LABELS)
        assert verdicts(got) == {"team-a/search": (True, "Attached"), "team-c/ranker": (True, "Attached")}


def test_a_call_to_no_service_refuses_that_service_alone() -> None:
    got = attach(
        platform(TENANCY).spec,
        PLATFORM,
        [team_service("team-a", "search", calls=["users"]), team_service("team-c", "ranker", calls=["missing"])],
        LABELS,
    )
    assert verdicts(got) == {"team-a/search": (True, "Attached"), "team-c/ranker": (False, "InvalidService")}
    ranker = next(v for v in got.verdicts if v.name == "ranker")
    assert ranker.message == "services[ranker].calls: 'missing' is not a service of this platform"


def test_an_invalid_platformservice_is_refused_with_its_field() -> None:
    bad = team_service("team-a", "search")
    del bad["spec"]["image"]
    bad["spec"]["reference"] = "users"
    got = attach(platform(TENANCY).spec, PLATFORM, [bad], LABELS)
    assert verdicts(got) == {"team-a/search": (False, "InvalidSpec")}
    assert "set image" in got.verdicts[0].message


def test_the_platformservice_spec_is_a_service_plus_its_platform() -> None:
    with pytest.raises(ValidationError, match="platformRef"):
        PlatformServiceSpec.model_validate({"name": "search", "image": "a:1"})
    spec = PlatformServiceSpec.model_validate({"name": "search", "image": "a:1", "platformRef": {"name": "shop"}})
    assert spec.service().model_dump(exclude_none=True) == {"name": "search", "image": "a:1"}


# -- rendering -------------------------------------------------------------------------------


def attached_context() -> RenderContext:
    tenancy = {**TENANCY, "expose": True}
    model = platform(tenancy)
    got = attach(
        model.spec,
        PLATFORM,
        [
            team_service(
                "team-a", "search", calls=["users"], expose={"path": "/search"}, database={"engine": "postgres"}
            ),
            team_service("team-c", "ranker", calls=["search"]),
        ],
        LABELS,
    )
    return RenderContext(name="shop", namespace="shop", spec=got.spec, placements=got.placements)


def test_an_attached_services_objects_live_in_its_namespace() -> None:
    ctx = attached_context()
    objects = render_platform(ctx)
    search = [o for o in objects if o["metadata"]["labels"].get("app.kubernetes.io/name") == "search"]
    assert {o["kind"] for o in search} >= {"Deployment", "Service", "ConfigMap", "ServiceAccount", "NetworkPolicy"}
    assert {o["metadata"]["namespace"] for o in search} == {"team-a"}
    assert all(o["metadata"]["labels"][PLATFORM_NAMESPACE_LABEL] == "shop" for o in search)
    own = [o for o in objects if o["metadata"]["labels"].get("app.kubernetes.io/name") == "users"]
    assert {o["metadata"]["namespace"] for o in own} == {"shop"}
    assert all(PLATFORM_NAMESPACE_LABEL not in o["metadata"]["labels"] for o in own)
    gateway = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "gateway-config")
    assert '"url": "http://search.team-a.svc:8080"' in gateway["data"]["KEELSON_ROUTES"]


def test_cross_namespace_edges_name_the_peers_namespace() -> None:
    ctx = attached_context()
    policies = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o
        for o in render_platform(ctx)
        if o["kind"] == "NetworkPolicy"
    }
    search = policies[("team-a", "search")]["spec"]
    sources = search["ingress"][0]["from"]
    # ranker (team-c) and the gateway (shop) call it: one peer per namespace, each selected by name.
    assert {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in sources} == {"shop", "team-c"}
    users = policies[("shop", "users")]["spec"]
    peers = [p for rule in users["ingress"] for p in rule.get("from", [])]
    assert any(
        p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "team-a"
        for p in peers
    )
    ranker_out = [p for rule in policies[("team-c", "ranker")]["spec"]["egress"] for p in rule.get("to", [])]
    assert any(
        p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "team-a"
        for p in ranker_out
    )


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations(range(4)),
    labelled=st.sets(st.sampled_from(["team-a", "team-b", "team-c"])),
)
def test_verdicts_do_not_depend_on_the_listing_order(order: list[int], labelled: set[str]) -> None:
    labels = {ns: ({"keelson.dev/tenant": "yes"} if ns in labelled else {}) for ns in ("team-a", "team-b", "team-c")}
    candidates = [
        team_service("team-a", "search", calls=["ranker"], created="2026-01-01T00:00:01Z"),
        team_service("team-b", "ranker", calls=["search"], created="2026-01-01T00:00:02Z"),
        team_service("team-c", "search", created="2026-01-01T00:00:03Z"),
        team_service("team-c", "stats", calls=["search"], created="2026-01-01T00:00:04Z"),
    ]
    first = attach(platform(TENANCY).spec, PLATFORM, candidates, labels)
    again = attach(platform(TENANCY).spec, PLATFORM, [candidates[i] for i in order], labels)
    assert verdicts(first) == verdicts(again)
    assert [s.name for s in first.spec.services] == [s.name for s in again.spec.services]
    # Whatever was accepted renders, and every accepted service is in its team's namespace.
    ctx = RenderContext(name="shop", namespace="shop", spec=first.spec, placements=first.placements)
    for obj in render_platform(ctx):
        service = obj["metadata"]["labels"].get("app.kubernetes.io/name")
        if service in first.placements and obj["kind"] != "KafkaTopic":
            assert obj["metadata"]["namespace"] == first.placements[service].namespace


def test_a_teams_bad_component_refuses_its_service_not_the_platform() -> None:
    from keelson.api.components import ComponentDefinitionSpec
    from keelson.components.resolve import resolve_service

    redis = ComponentDefinitionSpec.model_validate(
        {
            "type": "redis",
            "version": "1.0.0",
            "parameters": {"type": "object", "properties": {"memory": {"type": "string", "default": "64Mi"}}},
            "allowedKinds": ["Deployment"],
            "templates": [{"name": "d", "template": "{}"}],
        }
    )
    tenancy = {**TENANCY, "componentTypes": ["redis"]}
    candidates = [
        team_service("team-a", "search", components=[{"name": "cache", "type": "redis@2"}]),
        team_service(
            "team-c", "ranker", components=[{"name": "cache", "type": "redis@1", "parameters": {"memory": 5}}]
        ),
        team_service("team-c", "stats", components=[{"name": "cache", "type": "redis@1"}]),
    ]
    got = attach(
        platform(tenancy).spec,
        PLATFORM,
        candidates,
        LABELS,
        components=lambda service, _namespace: resolve_service(service, [redis], "spec")[1],
    )
    assert verdicts(got) == {
        "team-a/search": (False, "InvalidComponent"),
        "team-c/ranker": (False, "InvalidComponent"),
        "team-c/stats": (True, "Attached"),
    }
    messages = {v.name: v.message for v in got.verdicts}
    assert (
        messages["search"]
        == "spec.components[0].type: redis@2 matches no ComponentDefinition (published versions: 1.0.0)"
    )
    assert messages["ranker"].startswith("spec.components[0].parameters.memory: ")


def test_the_tenancy_example_attaches_its_team() -> None:
    import yaml

    folder = Path(__file__).resolve().parents[2] / "examples" / "tenancy"
    (platform_doc,) = yaml.safe_load_all((folder / "platform.yaml").read_text())
    namespace_doc, team = yaml.safe_load_all((folder / "team-search.yaml").read_text())
    model = MicroservicePlatform.from_object(platform_doc)
    team["metadata"].update(uid="u1", generation=1, creationTimestamp="2026-01-01T00:00:00Z")
    labels = {namespace_doc["metadata"]["name"]: namespace_doc["metadata"]["labels"]}
    got = attach(model.spec, ("shop", "shop"), [team], labels)
    assert verdicts(got) == {"team-search/search": (True, "Attached")}
    ctx = RenderContext(name="shop", namespace="shop", spec=got.spec, placements=got.placements)
    assert ctx.service_url("search") == "http://search.team-search.svc:8080"


def test_a_teams_template_that_fails_refuses_its_service_alone() -> None:
    from keelson.api.components import ComponentDefinitionSpec
    from keelson.controller.components import team_component_problems

    # Vetted with its defaults, a template can still fail with a team's parameters: here, when
    # asked for a ConfigMap in another namespace.
    picky = ComponentDefinitionSpec.model_validate(
        {
            "type": "picky",
            "version": "1.0.0",
            "parameters": {"type": "object", "properties": {"where": {"type": "string", "default": ""}}},
            "allowedKinds": ["ConfigMap"],
            "templates": [
                {
                    "name": "config",
                    "template": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ fullname }}\n"
                    "{% if parameters.where %}  namespace: {{ parameters.where }}\n{% endif %}",
                }
            ],
        }
    )
    model = platform({**TENANCY, "componentTypes": ["picky"]})
    candidates = [
        team_service("team-a", "search", components=[{"name": "c", "type": "picky@1"}]),
        team_service(
            "team-c", "ranker", components=[{"name": "c", "type": "picky@1", "parameters": {"where": "kube-system"}}]
        ),
    ]
    got = attach(
        model.spec,
        PLATFORM,
        candidates,
        LABELS,
        components=lambda service, where: team_component_problems(
            service, where, platform=PLATFORM, spec=model.spec, published=[picky]
        ),
    )
    assert verdicts(got) == {"team-a/search": (True, "Attached"), "team-c/ranker": (False, "InvalidComponent")}
    ranker = next(v for v in got.verdicts if v.name == "ranker")
    assert (
        "names namespace 'kube-system'; a component's objects live in its service's namespace (team-c)"
        in ranker.message
    )
    # What was accepted renders, the component in its team's namespace.
    from keelson.components.resolve import resolve

    ctx = RenderContext(
        name="shop",
        namespace="shop",
        spec=got.spec,
        placements=got.placements,
        components=tuple(resolve(got.spec, [picky])),
    )
    config = next(o for o in render_platform(ctx) if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "search-c")
    assert config["metadata"]["namespace"] == "team-a"
