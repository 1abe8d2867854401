"""Components on the real control plane: a platform team publishes ComponentDefinitions, a
platform's services use them, and the operator makes, changes, re-versions, refuses and prunes
their objects with the permissions of its chart; the API server keeps published versions
immutable."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.kube import Kube, eventually, idle_window, operator_writes, utcnow
from keelson.devstack.ports import free_port
from keelson.devstack.stack import LocalStack

pytestmark = pytest.mark.cluster

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "components"


def _definition(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text()))


def _published(doc: dict[str, Any], type_: str, version: str) -> dict[str, Any]:
    """A copy of a definition under a type of the test's own (definitions are cluster-wide)."""
    doc = copy.deepcopy(doc)
    doc["spec"]["type"], doc["spec"]["version"] = type_, version
    doc["metadata"] = {"name": f"{type_}-v{version}"}
    return doc


def _publish(kube: Kube, *docs: dict[str, Any]) -> None:
    kube.run("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))


def _platform(services: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "keelson.dev/v1alpha1",
        "kind": "MicroservicePlatform",
        "metadata": {"name": "shop"},
        "spec": {"domain": "shop", "services": services},
    }


def _status(kube: Kube, namespace: str) -> dict[str, Any]:
    return dict((kube.get("msp", "shop", namespace) or {}).get("status") or {})


def _condition(kube: Kube, namespace: str, ctype: str) -> dict[str, Any]:
    return kube.condition("shop", namespace, ctype) or {}


def _ready_at(kube: Kube, namespace: str) -> dict[str, Any] | None:
    msp = kube.get("msp", "shop", namespace) or {}
    generation = msp.get("metadata", {}).get("generation")
    for cond in (msp.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Ready" and cond["status"] == "True" and cond.get("observedGeneration") == generation:
            return msp
    return None


def _components(msp: dict[str, Any], service: str) -> dict[str, dict[str, Any]]:
    svc = next(s for s in msp["status"]["services"] if s["name"] == service)
    return {c["name"]: c for c in svc.get("components") or []}


@contextlib.contextmanager
def _volume_for(kube: Kube, namespace: str, claim: str) -> Iterator[None]:
    """The stack has no storage provisioner: the volume an administrator's would make, pre-bound
    to the claim a StatefulSet's volumeClaimTemplates will make."""
    name = f"{namespace}-{claim}"[:253]
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": f"/tmp/{name}"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }
    kube.run("apply", "-f", "-", stdin=yaml.safe_dump(volume))
    try:
        yield
    finally:
        kube.run("delete", "persistentvolume", name, "--wait=false", check=False)


@contextlib.contextmanager
def _webhook_unreachable(kube: Kube) -> Iterator[None]:
    """The stack's webhook configuration pointed at a port nothing listens on, for a while."""
    name = "keelson-keelson"
    config = json.loads(kube.run("get", "validatingwebhookconfiguration", name, "-o", "json").stdout)
    urls = [w["clientConfig"]["url"] for w in config["webhooks"]]
    dead = f"https://127.0.0.1:{free_port()}"

    def point(targets: list[str]) -> None:
        ops = [{"op": "replace", "path": f"/webhooks/{i}/clientConfig/url", "value": u} for i, u in enumerate(targets)]
        kube.run("patch", "validatingwebhookconfiguration", name, "--type=json", "-p", json.dumps(ops))

    point([f"{dead}/{u.rsplit('/', 1)[1]}" for u in urls])
    try:
        yield
    finally:
        point(urls)


def _container(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    dep = kube.get("deployment", name, namespace) or {}
    return dict(dep["spec"]["template"]["spec"]["containers"][0])


def test_a_published_version_is_immutable_and_named_after_itself(kube: Kube) -> None:
    type_ = f"imm{uuid.uuid4().hex[:8]}"
    doc = _published(_definition("redis"), type_, "1.0.0")
    _publish(kube, doc)
    _publish(kube, doc)  # the same again is no change
    changed = copy.deepcopy(doc)
    changed["spec"]["description"] = "changed"
    proc = kube.run("apply", "-f", "-", stdin=yaml.safe_dump(changed), check=False)
    assert proc.returncode != 0 and "a published version is immutable: publish a new version instead" in proc.stderr
    misnamed = copy.deepcopy(doc)
    misnamed["metadata"]["name"] = f"{type_}-latest"
    proc = kube.run("apply", "-f", "-", stdin=yaml.safe_dump(misnamed), check=False)
    assert proc.returncode != 0 and "metadata.name must be <spec.type>-v<spec.version>" in proc.stderr
    kube.run("delete", "componentdefinition", doc["metadata"]["name"])


def test_components_are_made_changed_refused_and_pruned(kube: Kube, namespace: str, stack: LocalStack) -> None:
    _publish(kube, *(_definition(n) for n in ("redis", "scheduled-job", "object-store")))
    kube.run(
        "create",
        "secret",
        "generic",
        "web-s3",
        "-n",
        namespace,
        "--from-literal=accessKey=a",
        "--from-literal=secretKey=b",
    )
    web: dict[str, Any] = {
        "name": "web",
        "image": "registry.example/web:1.0.0",
        "components": [
            {"name": "cache", "type": "redis@1", "parameters": {"memory": "128Mi"}},
            {
                "name": "nightly",
                "type": "scheduled-job@1",
                "parameters": {"schedule": "0 3 * * *", "command": ["report"]},
            },
            {
                "name": "files",
                "type": "object-store@1",
                "parameters": {"bucket": "uploads", "credentialsSecret": "web-s3"},
            },
        ],
    }
    with _volume_for(kube, namespace, "data-web-files-0"):
        _made_changed_refused_and_pruned(kube, namespace, web, stack.audit_log)


def _made_changed_refused_and_pruned(kube: Kube, namespace: str, web: dict[str, Any], audit_log: Path) -> None:
    doc = _platform([web])
    kube.apply(namespace, doc)
    msp = eventually(lambda: _ready_at(kube, namespace), timeout=120, what="Ready with its components")
    components = _components(msp, "web")
    assert {n: (c["version"], c["ready"], c["reason"]) for n, c in components.items()} == {
        "cache": ("1.0.1", True, "Ready"),
        "nightly": ("1.0.0", True, "Ready"),
        "files": ("1.0.1", True, "Ready"),
    }
    assert components["cache"]["objects"] == [
        "ConfigMap/web-cache",
        "Deployment/web-cache",
        "Service/web-cache",
        "NetworkPolicy/web-cache.component",
    ]
    assert _condition(kube, namespace, "ComponentsReady")["reason"] == "ComponentsReady"
    env = {e["name"]: e for e in _container(kube, namespace, "web")["env"]}
    assert env["REDIS_URL"]["value"] == f"redis://web-cache.{namespace}.svc:6379/0"
    assert env["S3_SECRET_ACCESS_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "web-s3", "key": "secretKey"}}
    sts = kube.get("statefulset", "web-files", namespace) or {}
    assert sts["status"].get("readyReplicas") == 1  # kwok runs its pod
    assert (kube.get("cronjob", "web-nightly", namespace) or {})["spec"]["schedule"] == "0 3 * * *"

    # A parameter changes the object, in place.
    web["components"][0]["parameters"]["memory"] = "256Mi"
    kube.apply(namespace, doc)
    eventually(
        lambda: _container(kube, namespace, "web-cache")["resources"]["limits"]["memory"] == "256Mi",
        timeout=60,
        what="memory limit updated",
    )

    # Bad parameters: refused at admission, one line per problem naming the field.
    before = (kube.get("deployment", "web-cache", namespace) or {})["metadata"]["generation"]
    good = copy.deepcopy(web["components"][0]["parameters"])
    web["components"][0]["parameters"] = {"memory": "lots", "colour": "red"}
    proc = kube.apply(namespace, doc, check=False)
    assert proc.returncode != 0
    assert 'admission webhook "platforms.keelson.dev" denied the request' in proc.stderr
    assert "spec.services[0].components[0].parameters.memory: must be a quantity (e.g. 256Mi, 0.5, 100m)" in proc.stderr
    assert "spec.services[0].components[0].parameters.colour: unknown parameter" in proc.stderr

    # With the webhook unreachable (failurePolicy Ignore), the write goes through, and the operator
    # reports the same problems and touches nothing.
    since = utcnow()
    with _webhook_unreachable(kube):
        kube.apply(namespace, doc)

        def refused() -> dict[str, Any] | None:
            cond = _condition(kube, namespace, "Ready")
            return cond if cond.get("reason") == "InvalidSpec" else None

        message = eventually(refused, timeout=60, what="InvalidSpec")["message"]
    assert "spec.services[0].components[0].parameters.memory: must be a quantity" in message
    assert "spec.services[0].components[0].parameters.colour: unknown parameter" in message
    # Untouched: the same spec (the resourceVersion moves with the rollout's status) and not one
    # write of the operator's but the platform's status.
    assert (kube.get("deployment", "web-cache", namespace) or {})["metadata"]["generation"] == before
    writes = operator_writes(audit_log, since=since, namespace=namespace)
    assert {w["objectRef"].get("resource") for w in writes} <= {"microserviceplatforms", "events"}, writes
    web["components"][0]["parameters"] = good

    # Removing components prunes every object of theirs (the claims of the StatefulSet stay).
    web["components"] = [web["components"][1]]
    kube.apply(namespace, doc)
    eventually(lambda: _ready_at(kube, namespace), timeout=120, what="Ready without the cache")
    for kind, name in [
        ("deployment", "web-cache"),
        ("service", "web-cache"),
        ("configmap", "web-cache"),
        ("networkpolicy", "web-cache.component"),
        ("statefulset", "web-files"),
        ("service", "web-files"),
    ]:
        eventually(lambda k=kind, n=name: kube.get(k, n, namespace) is None, timeout=60, what=f"{kind}/{name} pruned")
    assert "REDIS_URL" not in {e["name"] for e in _container(kube, namespace, "web").get("env") or []}
    assert kube.get("persistentvolumeclaim", "data-web-files-0", namespace) is not None  # data is kept
    web.pop("components")
    kube.apply(namespace, doc)
    eventually(lambda: kube.get("cronjob", "web-nightly", namespace) is None, timeout=60, what="CronJob pruned")
    assert not _condition(kube, namespace, "ComponentsReady")


def test_a_new_version_moves_only_the_platforms_pinned_to_its_line(
    kube: Kube, namespace: str, stack: LocalStack
) -> None:
    """redis@1 follows 1.x; redis@1.0 stays: its objects are not written at all. A Job (run once,
    ready by its definition's expression) comes with the new version and goes when the platform
    leaves it."""
    type_ = f"cache{os.getpid() % 10000}{uuid.uuid4().hex[:4]}"
    v100 = _published(_definition("redis"), type_, "1.0.0")
    _publish(kube, v100)
    services = [
        {"name": "moving", "image": "r.example/a:1", "components": [{"name": "c", "type": f"{type_}@1"}]},
        {"name": "pinned", "image": "r.example/b:1", "components": [{"name": "c", "type": f"{type_}@1.0"}]},
    ]
    kube.apply(namespace, _platform(services))
    eventually(lambda: _ready_at(kube, namespace), timeout=120, what="Ready on 1.0.0")
    pinned_before = (kube.get("deployment", "pinned-c", namespace) or {})["metadata"]["generation"]
    since = utcnow()

    v110 = _published(_definition("redis"), type_, "1.1.0")
    v110["spec"]["parameters"]["properties"]["memory"]["default"] = "96Mi"
    v110["spec"]["allowedKinds"].append("Job")
    v110["spec"]["templates"].append(
        {
            "name": "warmup",
            "template": (
                "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {{ fullname }}-warmup\nspec:\n"
                "  template:\n    spec:\n      restartPolicy: Never\n      containers:\n"
                "        - {name: warmup, image: {{ parameters.image | quote }}, command: [redis-cli, ping]}\n"
            ),
        }
    )
    # kwok's pods run and never end, so a finished Job is not what this test can wait for.
    v110["spec"]["readiness"] = [{"kind": "Job", "expression": "object.metadata.uid is defined"}]
    _publish(kube, v110)

    def moved() -> dict[str, Any] | None:
        msp = _ready_at(kube, namespace)
        if msp is None or _components(msp, "moving")["c"]["version"] != "1.1.0":
            return None
        return msp

    msp = eventually(moved, timeout=120, what="moving on 1.1.0")
    assert _components(msp, "pinned")["c"]["version"] == "1.0.0"
    assert _container(kube, namespace, "moving-c")["resources"]["limits"]["memory"] == "96Mi"
    assert kube.get("job", "moving-c-warmup", namespace) is not None
    assert kube.get("job", "pinned-c-warmup", namespace) is None
    assert (kube.get("deployment", "pinned-c", namespace) or {})["metadata"]["generation"] == pinned_before
    pinned = [
        w
        for w in operator_writes(stack.audit_log, since=since, namespace=namespace)
        if "pinned" in str(w["objectRef"].get("name"))
    ]
    assert pinned == []  # not one write to the pinned platform's objects

    # A version in use cannot be withdrawn (admission names its users); once the platform is
    # pinned back to 1.0, it can, and the Job goes with the version.
    proc = kube.run("delete", "componentdefinition", v110["metadata"]["name"], check=False)
    assert proc.returncode != 0
    assert f"{type_} 1.1.0 is in use by {namespace}/shop (service moving, component c)" in proc.stderr
    services[0]["components"][0]["type"] = f"{type_}@1.0"
    kube.apply(namespace, _platform(services))
    eventually(lambda: kube.get("job", "moving-c-warmup", namespace) is None, timeout=60, what="Job pruned")
    kube.run("delete", "componentdefinition", v110["metadata"]["name"])
    msp = eventually(lambda: _ready_at(kube, namespace), timeout=60, what="Ready on 1.0.0 again")
    assert _components(msp, "moving")["c"]["version"] == "1.0.0"


def test_a_platform_with_components_goes_quiet(kube: Kube, namespace: str, stack: LocalStack) -> None:
    """Zero operator writes once Ready, across two resyncs: what the API server defaults in a
    component's objects (a StatefulSet's claim templates, a CronJob's job template) is no drift."""
    _publish(kube, *(_definition(n) for n in ("redis", "scheduled-job")))
    sts = _published(_definition("object-store"), f"quiet{uuid.uuid4().hex[:6]}", "1.0.0")
    _publish(kube, sts)
    with _volume_for(kube, namespace, "data-web-files-0"):
        _goes_quiet(kube, namespace, stack, sts["spec"]["type"])


def _goes_quiet(kube: Kube, namespace: str, stack: LocalStack, store: str) -> None:
    kube.apply(
        namespace,
        _platform(
            [
                {
                    "name": "web",
                    "image": "registry.example/web:1.0.0",
                    "components": [
                        {"name": "cache", "type": "redis@1", "parameters": {"memory": "1024Mi"}},
                        {
                            "name": "nightly",
                            "type": "scheduled-job@1",
                            "parameters": {"schedule": "@daily", "command": ["x"]},
                        },
                        {
                            "name": "files",
                            "type": f"{store}@1",
                            "parameters": {"bucket": "files", "credentialsSecret": "s"},
                        },
                    ],
                }
            ]
        ),
    )
    eventually(lambda: _ready_at(kube, namespace), timeout=120, what="Ready")
    # Two resyncs: by the clock, and by the operator's count of passes.
    since = idle_window(stack.ports["operator-metrics"])
    writes = operator_writes(stack.audit_log, since=since, namespace=namespace)
    assert [(w["verb"], w["objectRef"].get("resource"), w["objectRef"].get("name")) for w in writes] == []
