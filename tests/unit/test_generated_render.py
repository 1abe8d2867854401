"""Generated platforms, rendered: every platform the API accepts renders to objects the API
server can take (unique names, label values that fit, requests within limits). The same
strategies drive the cluster tests (e2e/test_drift_roundtrip.py, e2e/test_generated_platforms.py)."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from kubernetes.utils import parse_quantity

from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.render import RenderContext, render_platform
from tests.cases.generated import platforms

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def render(doc: dict[str, Any]) -> list[dict[str, Any]]:
    model = MicroservicePlatform.from_object(doc)
    return render_platform(RenderContext(name=model.metadata.name, namespace="ns", spec=model.spec))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(platforms())
def test_every_generated_platform_renders_objects_the_api_server_takes(doc: dict[str, Any]) -> None:
    objects = render(doc)
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "two objects share a kind and name"
    for obj in objects:
        name = obj["metadata"]["name"]
        if obj["kind"] in ("Service", "Deployment"):
            assert DNS1035.match(name) and len(name) <= 63, name
        elif obj["kind"] != "NetworkPolicy" or "." not in name:
            assert SUBDOMAIN.match(name) and len(name) <= 253, name
        for value in obj["metadata"].get("labels", {}).values():
            assert len(value) <= 63 and LABEL_VALUE.match(value), value
        if obj["kind"] != "Deployment":
            continue
        (container,) = obj["spec"]["template"]["spec"]["containers"]
        limits = container["resources"].get("limits", {})
        for key, request in container["resources"].get("requests", {}).items():
            assert key not in limits or parse_quantity(request) <= parse_quantity(limits[key]), (key, container)
        env_names = [e["name"] for e in container.get("env", [])]
        assert len(env_names) == len(set(env_names))
