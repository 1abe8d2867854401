"""The HTTP, routing and database settings read from the env the operator renders."""

from __future__ import annotations

import json

import pytest

from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.render import RenderContext
from keelson.render.configmap import config_data
from keelson_services.http import ServiceClient
from keelson_services.services.gateway.routing import RouteTable
from keelson_services.settings import Route, Settings, SettingsError
from tests.cases.invalid_platforms import example

RENDERED = {
    "KEELSON_PLATFORM": "shop",
    "KEELSON_NAMESPACE": "shop",
    "KEELSON_DOMAIN": "ecommerce",
    "KEELSON_SERVICE": "gateway",
    "KEELSON_PORT": "8080",
    "KEELSON_HTTP_TIMEOUT_SECONDS": "5",
    "KEELSON_BREAKER_FAILURES": "3",
    "KEELSON_BREAKER_OPEN_SECONDS": "30",
    "KEELSON_RETRY_BACKOFF_SECONDS": "1,2,4,8",
    "KEELSON_RETRY_MAX": "3",
    "KEELSON_SERVICE_URLS": json.dumps({"users": "http://users.shop.svc:8080"}),
    "KEELSON_PUBLISHES": "",
    "KEELSON_SUBSCRIBES": "",
    "KEELSON_ROUTES": json.dumps([{"path": "/users", "service": "users", "url": "http://users.shop.svc:8080"}]),
}


def test_the_operators_env_is_read_whole() -> None:
    s = Settings.from_env(RENDERED | {"KEELSON_DATABASE_URI": "postgresql://u:secret@db:5432/users"})
    assert (s.platform, s.port, s.http_timeout_seconds, s.breaker_failures, s.breaker_open_seconds) == (
        "shop",
        8080,
        5.0,
        3,
        30.0,
    )
    assert s.service_urls == {"users": "http://users.shop.svc:8080"}
    assert s.routes == (Route("/users", "users", "http://users.shop.svc:8080"),)
    assert s.service_url("users") == "http://users.shop.svc:8080"
    assert s.require_database() == "postgresql://u:secret@db:5432/users"
    assert "secret" not in repr(s)


def test_a_service_without_a_database_or_routes_gets_neither() -> None:
    s = Settings.from_env({k: v for k, v in RENDERED.items() if k != "KEELSON_ROUTES"})
    assert s.routes == () and s.database_uri is None
    with pytest.raises(SettingsError, match="KEELSON_DATABASE_URI"):
        s.require_database()
    with pytest.raises(SettingsError, match="calls"):
        s.service_url("payments")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("KEELSON_PORT", "", "KEELSON_PORT is not set"),
        ("KEELSON_PORT", "http", "whole number"),
        ("KEELSON_HTTP_TIMEOUT_SECONDS", "0", "positive"),
        ("KEELSON_BREAKER_FAILURES", "2.5", "whole number"),
        ("KEELSON_SERVICE_URLS", "[1]", "JSON object"),
        ("KEELSON_SERVICE_URLS", "{", "not valid JSON"),
        ("KEELSON_ROUTES", '[{"path": "/x"}]', "KEELSON_ROUTES"),
    ],
)
def test_a_malformed_value_is_named_at_start_up(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(RENDERED | {name: value})


def test_the_gateway_routes_the_example_platforms_public_api_from_its_rendered_configmap() -> None:
    """The contract with the operator: its rendered env is what the library understands."""
    ctx = RenderContext(name="shop", namespace="shop", spec=MicroservicePlatform.from_object(example()).spec)
    gateway = Settings.from_env(config_data(ctx, ctx.service("gateway")))
    table = RouteTable(gateway.routes)
    assert table.match("/api/v1/orders/42").service == "orders"
    assert table.for_area("/users").service == "users"
    assert table.for_area("/notifications").service == "notifications"
    client = ServiceClient.from_settings(gateway)
    assert client.url("users", "/.well-known/jwks.json") == "http://users.shop.svc:8080/.well-known/jwks.json"
    assert (client.timeout_seconds, client.retry.backoff_seconds, client.retry.max_retries) == (5.0, (1, 2, 4, 8), 3)
