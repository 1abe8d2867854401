"""Shared helpers of the services' unit tests: settings as the operator would render them, a
controllable clock, and a transport that sends each downstream host to its own app."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keelson_services.services.users.signing_keys import public_jwk
from keelson_services.settings import Route, Settings


def settings(service: str = "svc", **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "service": service,
        "domain": "ecommerce",
        "kafka_bootstrap": None,
        "publishes": (),
        "subscribes": (),
        "retry_backoff_seconds": (1, 2, 4, 8),
        "retry_max": 3,
        "platform": "shop",
    }
    return Settings(**(values | overrides))


def gateway_settings(**overrides: Any) -> Settings:
    routes = (
        Route("/orders", "orders", "http://orders.shop.svc:8080"),
        Route("/users", "users", "http://users.shop.svc:8080"),
    )
    urls = {"users": "http://users.shop.svc:8080", "orders": "http://orders.shop.svc:8080"}
    return settings("gateway", routes=routes, service_urls=urls, **overrides)


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    """An `asyncio.sleep` stand-in that records the delays and returns at once."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.delays: list[float] = []
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)


class HostRouter(httpx.AsyncBaseTransport):
    """Sends each request to the transport registered for its host (one per downstream)."""

    def __init__(self, **by_service: httpx.AsyncBaseTransport) -> None:
        self.by_service = by_service

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        service = request.url.host.split(".", 1)[0]
        return await self.by_service[service].handle_async_request(request)


ISSUER, AUDIENCE, NOW = "urn:keelson:shop:users", "urn:keelson:shop:api", 1_800_000_000


class Signer:
    """Signs access tokens the way the users service does, with a key of its own."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.jwk = public_jwk(self.key)
        self.kid = self.jwk["kid"]

    def token(self, *, kid: str | None = None, **overrides: Any) -> str:
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "roles": ["customer"], "iat": NOW, "exp": NOW + 900}
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": kid or self.kid})
