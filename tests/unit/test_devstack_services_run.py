"""`keelson dev run`'s pure parts: env resolution as the kubelet does it, and loopback URL rewriting."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from keelson.api.v1alpha1 import MicroservicePlatformSpec
from keelson.devstack import mailsink, smssink
from keelson.devstack.services import (
    RunError,
    decode_secret,
    expand,
    gateway_url,
    local_env,
    local_url,
    reference_services,
    resolve_env,
    service_urls,
    stop_platform,
)
from keelson.render import RenderContext
from keelson.render.configmap import config_data
from keelson.render.deployment import render_deployment

SPEC: dict[str, Any] = {
    "domain": "ecommerce",
    "gateway": {"service": "gateway"},
    "databases": {"provider": "postgres", "adminSecretRef": {"name": "pg-admin"}},
    "services": [
        {"name": "gateway", "reference": "gateway", "calls": ["users", "orders"]},
        {"name": "users", "reference": "users", "database": {"engine": "postgres"}, "expose": {"path": "/users"}},
        {
            "name": "orders",
            "reference": "orders",
            "database": {"engine": "postgres"},
            "calls": ["payments"],
            "expose": {"path": "/orders"},
            "env": [{"name": "KEELSON_DATABASE_HOST", "value": "override"}, {"name": "X", "value": "$(KEELSON_PORT)"}],
        },
        {"name": "payments", "reference": "payments", "database": {"engine": "postgres"}},
        {"name": "legacy", "image": "example.com/legacy:1", "calls": ["users"]},
    ],
}


def test_expand_substitutes_defined_variables_keeps_undefined_and_unescapes() -> None:
    assert expand("$(A)-$(B)-$$(A)-$$", {"A": "1"}) == "1-$(B)-$(A)-$"


def test_env_from_config_maps_then_env_entries_win_in_order() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "one"}}, {"configMapRef": {"name": "two"}, "prefix": "P_"}],
        "env": [
            {"name": "A", "value": "literal"},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "db", "key": "uri"}}},
            {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "two", "key": "B"}}},
            {"name": "O", "valueFrom": {"secretKeyRef": {"name": "db", "key": "nope", "optional": True}}},
            {"name": "E", "value": "$(A)/$(S)"},
        ],
    }
    env = resolve_env(container, {"one": {"A": "from-cm", "B": "b"}, "two": {"B": "b2"}}, {"db": {"uri": "pg://x"}})
    assert env == {"A": "literal", "B": "b", "P_B": "b2", "S": "pg://x", "C": "b2", "E": "literal/pg://x"}


@pytest.mark.parametrize(
    "container",
    [
        {"envFrom": [{"configMapRef": {"name": "missing"}}]},
        {"env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "db", "key": "missing"}}}]},
        {"env": [{"name": "F", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
    ],
)
def test_missing_required_sources_and_pod_fields_are_errors(container: dict[str, Any]) -> None:
    with pytest.raises(RunError):
        resolve_env(container, {}, {"db": {"uri": "x"}})


def test_optional_missing_config_map_is_skipped() -> None:
    assert resolve_env({"envFrom": [{"configMapRef": {"name": "gone", "optional": True}}]}, {}, {}) == {}


def test_decode_secret() -> None:
    secret = {"data": {"uri": base64.b64encode(b"postgresql://u:p@h/d").decode()}, "stringData": {"x": "y"}}
    assert decode_secret(secret) == {"uri": "postgresql://u:p@h/d", "x": "y"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://users.shop.svc:8080", "http://127.0.0.1:4001"),
        ("http://users.shop.svc:8080/api/v1?a=1", "http://127.0.0.1:4001/api/v1?a=1"),
        ("http://users.shop.svc.cluster.local:8080", "http://127.0.0.1:4001"),
        ("http://users:8080", "http://127.0.0.1:4001"),
        ("http://users.other.svc:8080", "http://users.other.svc:8080"),
        ("http://billing.shop.svc:8080", "http://billing.shop.svc:8080"),
        ("https://example.com/x", "https://example.com/x"),
    ],
)
def test_local_url(url: str, expected: str) -> None:
    assert local_url(url, "shop", {"users": 4001}) == expected


def _rendered() -> tuple[list[dict[str, Any]], dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """What the operator renders for SPEC in namespace shop, and the database Secrets it writes."""
    ctx = RenderContext(name="shop", namespace="shop", spec=MicroservicePlatformSpec.model_validate(SPEC))
    deployments = [render_deployment(ctx, svc) for svc in ctx.services]
    config_maps = {f"{svc.name}-config": config_data(ctx, svc) for svc in ctx.services}
    secrets = {
        f"shop-{name}-db": {
            "uri": f"postgresql://{name}:pw@127.0.0.1:5432/{name}",
            "host": "127.0.0.1",
            "port": "5432",
            "dbname": name,
            "user": name,
            "password": "pw",
        }
        for name in ("users", "orders", "payments")
    }
    return deployments, config_maps, secrets


def test_reference_services_get_the_rendered_env() -> None:
    deployments, config_maps, secrets = _rendered()
    services = {s.name: s for s in reference_services(deployments, config_maps, secrets)}
    assert sorted(services) == ["gateway", "orders", "payments", "users"]  # not the image-based one
    orders = services["orders"].env
    assert orders["KEELSON_SERVICE"] == "orders" and orders["KEELSON_DOMAIN"] == "ecommerce"
    assert orders["KEELSON_DATABASE_URI"] == "postgresql://orders:pw@127.0.0.1:5432/orders"
    assert orders["KEELSON_DATABASE_HOST"] == "override"  # the user's env wins over the Secret's
    assert orders["X"] == orders["KEELSON_PORT"]
    assert "KEELSON_DATABASE_URI" not in services["gateway"].env


def test_local_env_overrides_only_port_bind_host_urls_and_smtp() -> None:
    deployments, config_maps, secrets = _rendered()
    services = {s.name: s for s in reference_services(deployments, config_maps, secrets)}
    ports = {"gateway": 4000, "users": 4001, "orders": 4002, "payments": 4003}
    gateway = services["gateway"].env
    env = local_env(gateway, service="gateway", namespace="shop", ports=ports, smtp_port=2525)
    assert env["KEELSON_PORT"] == "4000" and env["KEELSON_BIND_HOST"] == "127.0.0.1"
    assert json.loads(env["KEELSON_SERVICE_URLS"]) == {
        "orders": "http://127.0.0.1:4002",
        "users": "http://127.0.0.1:4001",
    }
    routes = json.loads(env["KEELSON_ROUTES"])
    assert {(r["path"], r["service"], r["url"]) for r in routes} == {
        ("/orders", "orders", "http://127.0.0.1:4002"),
        ("/users", "users", "http://127.0.0.1:4001"),
    }
    assert (env["KEELSON_SMTP_HOST"], env["KEELSON_SMTP_PORT"]) == ("127.0.0.1", "2525")
    changed = {k for k in env if env[k] != gateway.get(k)}
    assert changed == {
        "KEELSON_PORT", "KEELSON_BIND_HOST", "KEELSON_SERVICE_URLS", "KEELSON_ROUTES", "KEELSON_SMTP_HOST",
        "KEELSON_SMTP_PORT",
    }  # fmt: skip
    orders = local_env(services["orders"].env, service="orders", namespace="shop", ports=ports, smtp_port=None)
    assert json.loads(orders["KEELSON_SERVICE_URLS"]) == {"payments": "http://127.0.0.1:4003"}
    assert "KEELSON_SMTP_HOST" not in orders
    sms = local_env(gateway, service="gateway", namespace="shop", ports=ports, smtp_port=None, sms_port=2526)
    assert {k: sms[k] for k in sms if k.startswith("KEELSON_SMS_")} == {
        "KEELSON_SMS_BASE_URL": "http://127.0.0.1:2526", "KEELSON_SMS_ACCOUNT": smssink.DEV_ACCOUNT,
        "KEELSON_SMS_TOKEN": "dev", "KEELSON_SMS_FROM": smssink.DEV_SENDER,
    }  # fmt: skip


def test_the_sms_sink_takes_twilios_api_and_writes_each_message(tmp_path: Any) -> None:
    import httpx

    with smssink.SmsProvider(smssink.DEV_ACCOUNT, smssink.DEV_TOKEN, directory=tmp_path) as sink:
        url = f"{sink.url}/2010-04-01/Accounts/{smssink.DEV_ACCOUNT}/Messages.json"
        form = {"To": "+4915112345678", "From": smssink.DEV_SENDER, "Body": "shop: your code is 123456"}
        sent = httpx.post(url, data=form, auth=(smssink.DEV_ACCOUNT, smssink.DEV_TOKEN))
        assert sent.status_code == 201 and sent.json()["sid"].startswith("SM")
        assert httpx.post(url, data=form, auth=(smssink.DEV_ACCOUNT, "wrong")).status_code == 401
    (path,) = tmp_path.glob("*.json")
    assert json.loads(path.read_text()) | {"sid": ""} == {
        "sid": "", "to": "+4915112345678", "sender": smssink.DEV_SENDER, "body": "shop: your code is 123456",
    }  # fmt: skip


def test_service_urls_from_the_stack_file(tmp_path: Any) -> None:
    (tmp_path / "stack.json").write_text(
        json.dumps({"run": {"ports": {"svc-shop-shop-payments": 4003, "svc-x-shop-users": 1, "mail-sink": 2}}})
    )
    assert service_urls(tmp_path, "shop", "shop") == {"payments": "http://127.0.0.1:4003"}


def test_stopping_a_platform_exports_another_running_gateway(tmp_path: Any) -> None:
    gateways = {"a/shop": "http://127.0.0.1:1", "b/shop": "http://127.0.0.1:2"}
    (tmp_path / "stack.json").write_text(json.dumps({"run": {"gateways": gateways, "gateway_url": gateways["b/shop"]}}))
    assert stop_platform(tmp_path, "shop", "b", progress=print) == 0
    assert gateway_url(tmp_path) == "http://127.0.0.1:1"
    stop_platform(tmp_path, "shop", "a", progress=print)
    assert gateway_url(tmp_path) is None


async def test_minimal_smtp_sink_writes_each_message(tmp_path: Any) -> None:
    import asyncio
    import smtplib

    server = await asyncio.start_server(lambda r, w: mailsink._session(tmp_path, r, w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail("a@example.com", ["b@example.com"], "Subject: hi\r\n\r\n.leading dot\r\nbody\r\n")

    async with server:
        await asyncio.to_thread(send)
    (path,) = tmp_path.glob("*.eml")
    text = path.read_text()
    assert "Subject: hi" in text and ".leading dot" in text and "body" in text


def test_local_processes_send_spans_to_a_local_collector_or_keep_them(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318", "OTEL_SERVICE_NAME": "a"}
    ports = {"a": 18080}
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    kept = local_env(rendered, service="a", namespace="shop", ports=ports, smtp_port=None)
    assert kept["OTEL_TRACES_EXPORTER"] == "none"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    sent = local_env(rendered, service="a", namespace="shop", ports=ports, smtp_port=None)
    assert sent["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318" and "OTEL_TRACES_EXPORTER" not in sent
    assert "OTEL_TRACES_EXPORTER" not in local_env({}, service="a", namespace="shop", ports=ports, smtp_port=None)
