"""The app factory: one error format for every 4xx and 5xx, request limits, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from keelson_services.app import create_app
from keelson_services.errors import ApiError
from keelson_services.observability.health import Readiness
from tests.unit.svc_helpers import settings


class Thing(BaseModel):
    name: str
    count: int


def build(readiness: Readiness | None = None) -> FastAPI:
    router = APIRouter()

    @router.post("/things", status_code=201)
    async def create(thing: Thing) -> Thing:
        return thing

    @router.get("/refuse")
    async def refuse() -> None:
        raise ApiError(409, "already_there", "It exists", details={"id": 7}, headers={"X-Why": "because"})

    @router.get("/crash")
    async def crash() -> None:
        raise RuntimeError("a bug")

    return create_app(
        settings(), title="t", routers=[router], readiness=readiness, max_body_bytes=100, configure_logs=False
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = build()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
        ) as client,
    ):
        yield client


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert response.headers["content-type"] == "application/json"
    assert "x-trace-id" in response.headers
    error: dict[str, object] = body["error"]
    return error


async def test_a_routes_own_error_keeps_its_code_details_and_headers(http: httpx.AsyncClient) -> None:
    response = await http.get("/refuse")
    assert response.status_code == 409 and response.headers["x-why"] == "because"
    assert error_of(response) == {"code": "already_there", "message": "It exists", "details": {"id": 7}}


async def test_unknown_paths_and_methods_use_the_format(http: httpx.AsyncClient) -> None:
    assert error_of(await http.get("/nowhere"))["code"] == "not_found"
    response = await http.delete("/things")
    assert response.status_code == 405 and error_of(response)["code"] == "method_not_allowed"


async def test_validation_errors_name_each_field(http: httpx.AsyncClient) -> None:
    response = await http.post("/things", json={"name": 3})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_failed"
    assert error["details"] == {
        "errors": [
            {"location": ["body", "name"], "message": "Input should be a valid string", "type": "string_type"},
            {"location": ["body", "count"], "message": "Field required", "type": "missing"},
        ]
    }


async def test_malformed_json_is_a_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/things", content=b'{"name": ', headers={"content-type": "application/json"})
    assert response.status_code == 400 and error_of(response)["code"] == "malformed_json"


async def test_a_body_over_the_limit_is_a_413_by_content_length_and_when_streamed(http: httpx.AsyncClient) -> None:
    big = b'{"name": "' + b"x" * 200 + b'", "count": 1}'
    response = await http.post("/things", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and error_of(response)["details"] == {"max_bytes": 100}

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 20

    response = await http.post("/things", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and error_of(response)["code"] == "payload_too_large"


async def test_a_body_that_is_not_json_is_a_415(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/things", content=b"name=x", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415 and error_of(response)["code"] == "unsupported_media_type"
    ok = await http.post(
        "/things", content=b'{"name": "x", "count": 1}', headers={"content-type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 201


async def test_an_unhandled_exception_is_a_500_without_internals(http: httpx.AsyncClient) -> None:
    response = await http.get("/crash")
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal_error" and "a bug" not in str(error)


async def test_health_readiness_and_metrics() -> None:
    readiness = Readiness(timeout_seconds=1)
    healthy = True

    async def database() -> None:
        if not healthy:
            raise ConnectionError("connection refused")

    readiness.add("database", database)
    app = build(readiness)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/readyz")).status_code == 503  # the lifespan has not started
        async with app.router.lifespan_context(app):
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            assert (await http.get("/readyz")).json() == {"status": "ready", "checks": {"database": "ok"}}
            healthy = False
            response = await http.get("/readyz")
            assert response.status_code == 503
            assert error_of(response)["details"] == {"checks": {"database": "ConnectionError: connection refused"}}
            assert (await http.get("/healthz")).status_code == 200  # liveness ignores dependencies
            await http.get("/things")
            metrics = (await http.get("/metrics")).text
    assert 'keelson_http_requests_total{method="GET",route="/things",service="svc",status="405"}' in metrics


def test_the_openapi_document_describes_errors_in_the_one_format() -> None:
    document = build().openapi()
    responses = document["paths"]["/things"]["post"]["responses"]
    assert "422" not in responses  # FastAPI's own validation body is not what clients get
    assert responses["4XX"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
