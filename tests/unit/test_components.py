"""Components (ComponentDefinitions) rendered offline: the sandbox and its budget, the parameters
schema and its one-line errors, version pins, the contract a template's objects are held to, and
what a service gets (env, network edges). The cluster side is e2e/test_components.py."""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from keelson.api.components import ComponentDefinition, ComponentDefinitionSpec
from keelson.api.crd import definition_crd_yaml
from keelson.api.v1alpha1 import MicroservicePlatformSpec
from keelson.cli import main
from keelson.components import schema
from keelson.components.readiness import object_readiness
from keelson.components.resolve import ComponentProblems, resolve
from keelson.components.templating import Renderer, TemplateError, load_objects
from keelson.controller.admission import review_definition, review_definition_delete, review_platform
from keelson.render import RenderContext, render_platform
from keelson.render.vet import vet_definition

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "components").glob("*.yaml"))


def _example(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "examples" / "components" / f"{name}.yaml").read_text())


def _spec(doc: dict[str, Any]) -> ComponentDefinitionSpec:
    return ComponentDefinition.model_validate(doc).spec


def _platform(*components: dict[str, Any], service: str = "web") -> MicroservicePlatformSpec:
    return MicroservicePlatformSpec.model_validate(
        {"domain": "shop", "services": [{"name": service, "image": "r.example/web:1", "components": list(components)}]}
    )


def _render(platform: MicroservicePlatformSpec, *definitions: ComponentDefinitionSpec) -> list[dict[str, Any]]:
    ctx = RenderContext(name="shop", namespace="team", spec=platform, components=tuple(resolve(platform, definitions)))
    return render_platform(ctx)


# -- the sandbox -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ missing }}", "'missing' is undefined"),
        ("{{ ''.__class__ }}", "unsafe"),
        ("{{ '{0}'.format(1) }}", "unsafe"),
        ("{{ 'x' | center(10) }}", "No filter named 'center'"),
        ("{{ 'x' * 100000000 }}", "grew past"),
        ("{{ 2 ** 100000 }}", "exponent"),
        (
            "{% set ns = namespace(x='ab') %}{% for i in range(40) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}",
            "grew past",
        ),
        (
            "{% set ns = namespace(x=[1]) %}{% for i in range(40) %}{% set ns.x = ns.x + ns.x %}{% endfor %}",
            "grew past",
        ),
        ("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", "loop steps"),
        ("{% for c in s %}{% for d in s %}{% for e in s %}{% endfor %}{% endfor %}{% endfor %}", "loop steps"),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "RecursionError"),
        ("{{ 'x' | indent(100000) }}", "indent"),
        ("{% for %}", "line 1"),
    ],
)
def test_the_sandbox_refuses_escapes_and_bounds_the_work(source: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError, match=message):
        Renderer().render(source, {"s": "x" * 200})
    assert time.monotonic() - started < 5


def test_output_is_capped_and_yaml_aliases_are_refused() -> None:
    with pytest.raises(TemplateError, match="output larger"):
        Renderer().render("{% for i in range(5000) %}{{ s }}{% endfor %}", {"s": "y" * 100})
    with pytest.raises(TemplateError, match="aliases"):
        load_objects("a: &x [1, 2]\nb: *x\n")
    assert load_objects("---\n---\na: 1\n") == [{"a": 1}]


def test_filters_a_template_needs_work() -> None:
    out = Renderer().render(
        "{{ labels | tojson }} {{ p | b64encode }} {{ q | quote }} {{ n | default(3) }}\n{{ 'a\nb' | indent(2) }}",
        {"labels": {"k": "v"}, "p": "pw", "q": 'say "hi"', "n": None},
    )
    assert out == '{"k": "v"} cHc= "say \\"hi\\"" None\na\n  b'


# -- the parameters schema -------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "required": ["bucket"],
    "properties": {
        "bucket": {"type": "string", "pattern": "^[a-z]+$"},
        "memory": {"type": "string", "format": "quantity", "default": "64Mi"},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "tls": {"type": "object", "properties": {"enabled": {"type": "boolean", "default": False}}, "default": {}},
    },
}


def test_parameters_get_defaults_and_one_line_errors_with_paths() -> None:
    full, problems = schema.apply({"bucket": "files"}, SCHEMA, "p")
    assert problems == []
    assert full == {"bucket": "files", "memory": "64Mi", "replicas": 1, "tls": {"enabled": False}}
    _, problems = schema.apply(
        {"memory": "lots", "replicas": 9, "tags": ["a", 1, "c"], "colour": "red", "tls": {"enabled": "yes"}},
        SCHEMA,
        "spec.services[2].components[0].parameters",
    )
    assert sorted(problems) == sorted(
        [
            "spec.services[2].components[0].parameters.bucket: required",
            "spec.services[2].components[0].parameters.memory: must be a quantity (e.g. 256Mi, 0.5, 100m)",
            "spec.services[2].components[0].parameters.replicas: must be at most 5",
            "spec.services[2].components[0].parameters.tags: at most 2 items",
            "spec.services[2].components[0].parameters.tags[1]: must be a string",
            "spec.services[2].components[0].parameters.colour: unknown parameter "
            "(known: bucket, memory, replicas, tags, tls)",
            "spec.services[2].components[0].parameters.tls.enabled: must be a boolean",
        ]
    )


def test_a_schema_is_checked_itself() -> None:
    assert schema.check_schema(SCHEMA) == []
    problems = schema.check_schema(
        {
            "type": "object",
            "properties": {
                "a": {"type": "strin"},
                "b": {"type": "array"},
                "c": {"type": "string", "pattern": "("},
                "d": {"type": "string", "oneOf": []},
                "e": {"type": "integer", "default": "x"},
            },
        }
    )
    assert any(p.startswith("parameters.properties.a.type:") for p in problems)
    assert any(p.startswith("parameters.properties.b.items: required") for p in problems)
    assert any(p.startswith("parameters.properties.c.pattern: not a regular expression") for p in problems)
    assert any(p.startswith("parameters.properties.d.oneOf: not supported") for p in problems)
    assert schema.check_schema({"type": "object", "properties": {"e": {"type": "integer", "default": "x"}}}) == [
        "parameters.properties.e.default: must be an integer"
    ]


# -- versions --------------------------------------------------------------------------------------


def _version(doc: dict[str, Any], version: str) -> ComponentDefinitionSpec:
    doc = copy.deepcopy(doc)
    doc["metadata"]["name"] = f"{doc['spec']['type']}-v{version}"
    doc["spec"]["version"] = version
    return _spec(doc)


def test_a_pin_resolves_to_the_highest_published_version_within_it() -> None:
    redis = _example("redis")
    published = [_version(redis, v) for v in ("1.0.0", "1.2.0", "1.10.3", "1.2.7", "2.0.0")]
    picked = {
        pin: resolve(_platform({"name": "cache", "type": pin}), published)[0].version
        for pin in ("redis@1", "redis@1.2", "redis@2", "redis@1.10")
    }
    assert picked == {"redis@1": "1.10.3", "redis@1.2": "1.2.7", "redis@2": "2.0.0", "redis@1.10": "1.10.3"}
    with pytest.raises(ComponentProblems) as exc:
        resolve(_platform({"name": "cache", "type": "redis@3"}, {"name": "q", "type": "queue@1"}), published)
    assert exc.value.problems == [
        "spec.services[0].components[0].type: redis@3 matches no ComponentDefinition "
        "(published versions: 1.0.0, 1.2.0, 1.2.7, 1.10.3, 2.0.0)",
        "spec.services[0].components[1].type: queue@1 matches no ComponentDefinition (no such component type)",
    ]


def test_a_definition_is_named_after_its_version() -> None:
    doc = _example("redis")
    doc["metadata"]["name"] = "redis-latest"
    with pytest.raises(ValueError, match=r"redis-v1\.0\.1"):
        ComponentDefinition.model_validate(doc)


# -- rendering -------------------------------------------------------------------------------------


def test_a_redis_cache_gives_its_service_a_url_and_an_edge() -> None:
    objects = _render(
        _platform({"name": "cache", "type": "redis@1", "parameters": {"memory": "128Mi"}}), _spec(_example("redis"))
    )
    by_key = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    deployment = by_key["Deployment", "web-cache"]
    assert deployment["metadata"]["namespace"] == "team"
    assert deployment["metadata"]["labels"]["keelson.dev/component"] == "web-cache"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["keelson.dev/platform"] == "shop"  # held by the platform's default-deny policy
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["memory"] == "128Mi"
    web = by_key["Deployment", "web"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "REDIS_URL", "value": "redis://web-cache.team.svc:6379/0"} in web["env"]
    egress = by_key["NetworkPolicy", "web"]["spec"]["egress"]
    to_cache = {"podSelector": {"matchLabels": {"keelson.dev/platform": "shop", "keelson.dev/component": "web-cache"}}}
    assert {"to": [to_cache], "ports": [{"protocol": "TCP", "port": 6379}]} in egress
    policy = by_key["NetworkPolicy", "web-cache.component"]["spec"]
    assert policy["ingress"] == [
        {
            "from": [
                {"podSelector": {"matchLabels": {"keelson.dev/platform": "shop", "app.kubernetes.io/name": "web"}}}
            ],
            "ports": [{"protocol": "TCP", "port": 6379}],
        }
    ]


def _definition(template: str, **spec: Any) -> ComponentDefinitionSpec:
    return ComponentDefinitionSpec.model_validate(
        {
            "type": "thing",
            "version": "1.0.0",
            "allowedKinds": ["ConfigMap"],
            "templates": [{"name": "one", "template": template}],
            **spec,
        }
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ fullname }}', namespace: kube-system}\n",
            "names namespace 'kube-system'",
        ),
        ("apiVersion: v1\nkind: Secret\nmetadata: {name: '{{ fullname }}'}\n", "kind Secret is not allowed"),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: '{{ fullname }}'}\n",
            "kind ClusterRole is not allowed",
        ),
        ("apiVersion: v2\nkind: ConfigMap\nmetadata: {name: '{{ fullname }}'}\n", "must be apiVersion v1"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n", "must be named web-thing or web-thing-<suffix>"),
        ("- just\n- a list\n", "not a Kubernetes object"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ fullname }}'}\n---\n"
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ fullname }}'}\n",
            "made twice",
        ),
    ],
)
def test_a_template_is_held_to_the_definitions_contract(template: str, message: str) -> None:
    with pytest.raises(ComponentProblems, match=message) as exc:
        _render(_platform({"name": "thing", "type": "thing@1"}), _definition(template))
    if message == "made twice":
        return  # a problem of the component as a whole
    assert all(
        p.startswith("spec.services[0].components[0] (thing@1.0.0): templates[0] (one)") for p in exc.value.problems
    )


def test_a_component_cannot_take_a_services_name_or_another_components_variable() -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ fullname }}-config'}\n"
    # Service "web-thing" has a ConfigMap web-thing-config; component "thing" of service "web" too.
    platform = MicroservicePlatformSpec.model_validate(
        {
            "domain": "shop",
            "services": [
                {"name": "web", "image": "r/web:1", "components": [{"name": "thing", "type": "thing@1"}]},
                {"name": "web-thing", "image": "r/t:1"},
            ],
        }
    )
    with pytest.raises(ComponentProblems, match="ConfigMap/web-thing-config: a component's object has the name"):
        _render(platform, _definition(cm))
    outputs = {"env": [{"name": "URL", "value": "x://{{ fullname }}"}]}
    with pytest.raises(ComponentProblems, match=r"gives URL, as spec\.services\[0\]\.components\[0\] does"):
        _render(
            _platform({"name": "a", "type": "thing@1"}, {"name": "b", "type": "thing@1"}),
            _definition("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ fullname }}'}\n", outputs=outputs),
        )


def test_defaults_reach_the_templates_and_a_new_version_changes_only_its_users() -> None:
    v1 = _spec(_example("redis"))
    doc = _example("redis")
    doc["metadata"]["name"], doc["spec"]["version"] = "redis-v1.1.0", "1.1.0"
    doc["spec"]["parameters"]["properties"]["memory"]["default"] = "96Mi"
    v11 = _spec(doc)
    pinned = _render(_platform({"name": "cache", "type": "redis@1.0"}), v1, v11)
    moving = _render(_platform({"name": "cache", "type": "redis@1"}), v1, v11)

    def memory(objects: list[dict[str, Any]]) -> str:
        dep = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "web-cache")
        return str(dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"])

    assert (memory(pinned), memory(moving)) == ("64Mi", "96Mi")


# -- readiness -------------------------------------------------------------------------------------


def test_readiness_defaults_by_kind_and_expressions() -> None:
    r = Renderer()
    dep = {"metadata": {"name": "d", "generation": 2}, "spec": {"replicas": 2}}
    rolled = {**dep, "status": {"observedGeneration": 2, "availableReplicas": 2, "updatedReplicas": 2}}
    assert not object_readiness("Deployment", dep, None, r).ready
    assert object_readiness("Deployment", rolled, None, r).ready
    job = {"metadata": {"name": "j"}, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    assert object_readiness("Job", job, None, r).reason == "Job/j: failed"
    assert object_readiness("Service", {"metadata": {"name": "s"}}, None, r).ready
    assert object_readiness("Service", None, None, r).reason == "Service: not created yet"
    rule = ComponentDefinitionSpec.model_validate(
        {
            "type": "t",
            "version": "1.0.0",
            "allowedKinds": ["StatefulSet"],
            "templates": [{"name": "x", "template": ""}],
            "readiness": [{"kind": "StatefulSet", "expression": "object.status.readyReplicas | default(0) >= 1"}],
        }
    ).readiness
    sts = {"metadata": {"name": "s"}, "status": {}}
    assert not object_readiness("StatefulSet", sts, rule, r).ready
    assert object_readiness("StatefulSet", {**sts, "status": {"readyReplicas": 1}}, rule, r).ready


# -- the definitions as files ----------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_example_definitions_vet_clean(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        assert vet_definition(doc) == []


def test_def_vet_prints_one_line_per_problem_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: keelson.dev/v1alpha1\nkind: ComponentDefinition\nmetadata: {name: bad-v1.0.0}\nspec:\n"
        "  type: bad\n  version: 1.0.0\n  parameters:\n    type: object\n    properties:\n"
        "      size: {type: strin}\n  allowedKinds: [ConfigMap]\n  templates:\n    - name: one\n"
        "      template: |\n        apiVersion: v1\n        kind: ConfigMap\n        metadata:\n"
        "          name: {{ fullname }\n"
    )
    assert main(["def", "vet", str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{bad}:10: bad-v1.0.0: spec.parameters.properties.size.type: 'strin' is not one of array, boolean, "
        "integer, number, object, string",
        f"{bad}:18: bad-v1.0.0: spec.templates[0] (one): line 4: unexpected '}}'",
    ]
    assert main(["def", "vet", *map(str, EXAMPLES)]) == 0


def test_render_resolves_against_definition_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    platform = tmp_path / "p.yaml"
    doc = {
        "apiVersion": "keelson.dev/v1alpha1",
        "kind": "MicroservicePlatform",
        "metadata": {"name": "shop"},
        "spec": {
            "domain": "shop",
            "services": [
                {
                    "name": "web",
                    "image": "r/web:1",
                    "components": [{"name": "cache", "type": "redis@1", "parameters": {"memory": "lots"}}],
                }
            ],
        },
    }
    platform.write_text(yaml.safe_dump(doc))
    assert main(["render", "-f", str(platform), "-d", str(ROOT / "examples" / "components")]) == 1
    assert capsys.readouterr().err.strip() == (
        f"{platform}: shop: spec.services[0].components[0].parameters.memory: "
        "must be a quantity (e.g. 256Mi, 0.5, 100m)"
    )
    doc["spec"]["services"][0]["components"][0]["parameters"]["memory"] = "1Gi"
    platform.write_text(yaml.safe_dump(doc))
    assert main(["render", "-f", str(platform), "-d", str(ROOT / "examples" / "components")]) == 0
    kinds = [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(capsys.readouterr().out)]
    assert ("Deployment", "web-cache") in kinds


def test_committed_definition_crds_are_current() -> None:
    for path in (ROOT / "crds", ROOT / "charts" / "keelson" / "files" / "crds"):
        file = path / "keelson.dev_componentdefinitions.yaml"
        assert file.read_text() == definition_crd_yaml(), (
            f"{file} is stale: keelson crd --kind ComponentDefinition -o ..."
        )


# -- admission ---------------------------------------------------------------------------------------


def test_admission_reviews_platforms_definitions_and_deletions() -> None:
    redis = _spec(_example("redis"))
    platform = {
        "apiVersion": "keelson.dev/v1alpha1",
        "kind": "MicroservicePlatform",
        "metadata": {"name": "shop", "namespace": "team"},
        "spec": {
            "domain": "shop",
            "services": [
                {"name": "web", "image": "r/web:1", "components": [{"name": "cache", "type": "redis@1"}]},
                {"name": "api", "image": "r/api:1"},
            ],
        },
    }
    assert review_platform(platform, [redis]) == []
    bad = copy.deepcopy(platform)
    bad["spec"]["services"][0]["components"][0]["parameters"] = {"memory": "lots"}
    assert review_platform(bad, [redis]) == [
        "spec.services[0].components[0].parameters.memory: must be a quantity (e.g. 256Mi, 0.5, 100m)"
    ]
    assert review_platform(platform, []) == [
        "spec.services[0].components[0].type: redis@1 matches no ComponentDefinition (no such component type)"
    ]
    assert review_definition(_example("redis")) == []
    broken = _example("redis")
    broken["spec"]["templates"][0]["template"] = "{% if %}"
    assert review_definition(broken) == [
        "spec.templates[0] (config): line 1: Expected an expression, got 'end of statement block'"
    ]
    users = [("team/shop", platform)]
    assert review_definition_delete(_example("redis"), users, [redis]) == [
        "redis 1.0.1 is in use by team/shop (service web, component cache): move them to another version first"
    ]
    newer = _example("redis")
    newer["metadata"]["name"], newer["spec"]["version"] = "redis-v1.1.0", "1.1.0"
    # While 1.1.0 is published, the platform resolves to it: 1.0.0 may go.
    assert review_definition_delete(_example("redis"), users, [redis, _spec(newer)]) == []
    # A product team's service that uses it holds it too (docs/tenancy.md).
    team = {
        "metadata": {"name": "search", "namespace": "team-a"},
        "spec": {
            "name": "search",
            "image": "team/search:1",
            "platformRef": {"name": "shop"},
            "components": [{"name": "cache", "type": "redis@1"}],
        },
    }
    assert review_definition_delete(_example("redis"), [], [redis], [("team-a/search", team)]) == [
        "redis 1.0.1 is in use by PlatformService team-a/search (service search, component cache): move them to "
        "another version first"
    ]


GOLDEN = ROOT / "tests" / "golden" / "components"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_golden_component_objects(path: Path) -> None:
    """What each example definition makes for a service, reviewed by a person; the way to test a
    definition of your own (docs/components.md). KEELSON_UPDATE_GOLDEN=1 rewrites them."""
    definition = _spec(yaml.safe_load(path.read_text()))
    example = dict(definition.example or {})
    major = definition.version.split(".")[0]
    spec = _platform({"name": "x", "type": f"{definition.type}@{major}", "parameters": example})
    ctx = RenderContext(name="shop", namespace="team", spec=spec, components=tuple(resolve(spec, [definition])))
    objects = [o for o in render_platform(ctx) if (o["metadata"].get("labels") or {}).get("keelson.dev/component")]
    web = next(o for o in render_platform(ctx) if o["kind"] == "Deployment" and o["metadata"]["name"] == "web")
    env = web["spec"]["template"]["spec"]["containers"][0].get("env") or []
    text = yaml.safe_dump_all([*objects, {"serviceEnv": env}], sort_keys=True)
    golden = GOLDEN / f"{path.stem}.yaml"
    if os.environ.get("KEELSON_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.read_text() == text, f"{golden} differs; review, then KEELSON_UPDATE_GOLDEN=1"
