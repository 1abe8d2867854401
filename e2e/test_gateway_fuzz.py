"""Schemathesis over the gateway's public OpenAPI document (`/openapi.json`), with all five
reference services behind it for real (their databases, Kafka, the SMTP sink): whatever the
fuzzer sends, no operation answers 5xx, and the answers match what the document promises.

Each case is sent as a registered customer (an admin on the admin operations) whenever it
carries a well-formed bearer token, with a fresh `Idempotency-Key` whenever the generated one is
valid, and half of its valid ids and SKUs made ones that exist (`Fuzzing.prepare`), so the
operations are exercised past 401, 404 and unknown SKUs: orders are really placed, paid, read
and cancelled, products listed, added and changed, and
`test_the_fuzzing_got_through_on_every_operation` checks that each operation succeeded at least
once. The regression tests at the end are what the fuzzing found.

Schemathesis drives an ASGI app from a thread of its own, on its own event loop, while the
services' resources (database pools, Kafka clients) belong to the loop that started them. So
the shop runs on a loop in a thread of its own too, and `LoopBridge` hands each request over
to that loop unchanged (same ASGI scope and body) and the answer back."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Coroutine, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from e2e.svc_platform import Shop, kafka_bootstrap
from e2e.svc_shop import RunningShop, rows, running_shop, shop
from keelson_services.contracts.notifications import ActivateRequest, DeviceRequest, TemplateVersionRequest
from keelson_services.contracts.orders import MAX_ITEMS, MAX_QUANTITY, MAX_TOTAL_CENTS, MAX_UNIT_PRICE_CENTS
from keelson_services.services.gateway.config import GatewayConfig
from keelson_services.services.gateway.main import create_app as create_gateway
from keelson_services.services.notifications.webpush import b64url

__all__ = ["kafka_bootstrap", "shop"]
pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

T = TypeVar("T")
Case = schemathesis.Case[Any]

# The fuzzer is one client sending as fast as it can; the rate limit is not what is under test.
GATEWAY_ENV = {"KEELSON_GATEWAY_RATE_LIMIT_PER_SECOND": "100000", "KEELSON_GATEWAY_RATE_LIMIT_BURST": "100000"}
# Bounded: the whole file runs well within two minutes on two cores. Derandomized, so a failure
# is the same failure on every run; no example database is written anywhere (`database=None`),
# and hypothesis' caches (the constants it collects from the code, Unicode tables) go to /tmp,
# not into the working tree.
MAX_EXAMPLES = 75
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "keelson-hypothesis")
# Idempotency-Key as documented (printable ASCII, 1 to 255 characters).
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# A SKU as documented (`contracts.text.Sku`); the catalogue the fuzzer orders from, plentiful:
# FUZZ-0 to FUZZ-99 (an order has at most 100 items), and the product the admin operations aim
# at, kept apart so that a PATCH to no stock does not stop the orders.
_VALID_SKU = re.compile(r"^[^\x00]{1,64}$")
FUZZ_STOCK, PATCHED_SKU = 1_000_000_000, "FUZZ-PATCHED"


class ShopThread:
    """`running_shop` on an event loop of its own, in a thread of its own."""

    def __init__(self, kafka_bootstrap: str, gateway_env: Mapping[str, str]) -> None:
        self._args = (kafka_bootstrap, gateway_env)
        self._started: Future[RunningShop] = Future()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="shop", daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    async def _main(self) -> None:
        self.loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            async with running_shop(self._args[0], gateway_env=self._args[1]) as shop:
                self._started.set_result(shop)
                await self._stop.wait()
        except BaseException as exc:
            if not self._started.done():
                self._started.set_exception(exc)
            raise

    def __enter__(self) -> RunningShop:
        self._thread.start()
        return self._started.result(timeout=120)

    def __exit__(self, *_: object) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the shop did not stop"

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)


class LoopBridge:
    """An ASGI app that serves each HTTP request with the app in `target`, on that app's loop
    (another thread's): the request's scope and body are handed over unchanged."""

    def __init__(self) -> None:
        self.target: tuple[ASGIApp, asyncio.AbstractEventLoop] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # the shop runs the apps' lifespans itself
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert self.target is not None, "no app to serve: the `fuzzing` fixture sets it"
        app, loop = self.target
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        served = asyncio.run_coroutine_threadsafe(self._serve(app, dict(scope), body), loop)
        for message in await asyncio.wrap_future(served):
            await send(message)

    @staticmethod
    async def _serve(app: ASGIApp, scope: Scope, body: bytes) -> list[Message]:
        sent: list[Message] = []
        complete, delivered = asyncio.Event(), False

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await complete.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                complete.set()

        await app(scope, receive, send)
        return sent


@dataclass
class Fuzzing:
    """Who the fuzzer acts as, and what it may aim at, so that it gets past 401 and 404."""

    customer: dict[str, str]  # the Authorization header of each account
    admin: dict[str, str]
    leaver: dict[str, str]  # for DELETE /users/me, which deletes the caller's account for good
    order_id: str  # the customer's order
    shipping_id: str  # another of theirs, for the admins' fulfilment (the first may be cancelled first)
    target_id: str  # an account the admin operations may change
    device_id: str  # the customer's push device
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)

    def prepare(self, case: Case) -> None:
        """Make `case` one that can get through, where the fuzzer generated it to be valid:
        - a well-formed bearer token becomes a real one: the customer's, the admin's on the
          admin operations, the leaver's on DELETE /users/me (a missing or malformed
          Authorization stays as generated: that request must be 401);
        - a valid Idempotency-Key becomes unique (the same key with another body is refused);
        - half of the valid ids become ones that exist (decided by the id, so runs repeat), and
          so do half of the SKUs in paths; an order's valid SKUs all become ones in the
          catalogue, in its currency (else a schema-valid order is 422 `unknown_sku`, which
          schemathesis counts as a valid request rejected);
        - query parameters the operation does not document are dropped: the gateway ignores
          them, as HTTP APIs do and as the document does not forbid, while schemathesis counts
          them as invalid and expects a refusal."""
        if case.headers is not None:
            auth = case.headers.get("Authorization")
            if isinstance(auth, str) and auth.lower().startswith("bearer "):
                case.headers["Authorization"] = self._token_for(case)["Authorization"]
            key = case.headers.get("Idempotency-Key")
            if isinstance(key, str) and _VALID_KEY.fullmatch(key):
                case.headers["Idempotency-Key"] = str(uuid.uuid4())
        order_id = self.shipping_id if case.path.startswith("/api/v1/admin/orders/") else self.order_id
        for name, known in (("order_id", order_id), ("user_id", self.target_id), ("device_id", self.device_id)):
            value = (case.path_parameters or {}).get(name)
            if case.path_parameters is not None and isinstance(value, str) and _even_uuid(value):
                case.path_parameters[name] = known
        sku = (case.path_parameters or {}).get("sku")
        if case.path_parameters is not None and isinstance(sku, str) and _VALID_SKU.fullmatch(sku) and len(sku) % 2:
            case.path_parameters["sku"] = PATCHED_SKU
        if (case.method, case.path) == ("POST", "/api/v1/orders") and isinstance(case.body, dict):
            self._order_from_the_catalogue(case.body)
        if case.path.startswith("/api/v1/admin/notifications/") or case.path == "/api/v1/notifications/devices":
            self._real_template_or_device(case)
        if case.query:
            operation = schema.raw_schema["paths"].get(case.path, {}).get(case.method.lower(), {})
            documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            for name in set(case.query) - documented:
                del case.query[name]

    @staticmethod
    def _order_from_the_catalogue(body: dict[str, Any]) -> None:
        items = body.get("items")
        if not isinstance(items, list) or not items:
            return
        skus = [item.get("sku") if isinstance(item, dict) else None for item in items]
        if all(isinstance(s, str) and _VALID_SKU.fullmatch(s) for s in skus):
            for n, item in enumerate(items):
                item["sku"] = f"FUZZ-{n}"
            if isinstance(body.get("currency"), str) and re.fullmatch(r"[A-Z]{3}", body["currency"]):
                body["currency"] = "EUR"

    @staticmethod
    def _real_template_or_device(case: Case) -> None:
        """Half of the valid template names and locales become `welcome` and `en` (a template that
        exists and renders with any sample data), valid versions to activate become 1, a new
        version's valid parts become a template that parses and fits its channel, and a device's
        valid keys become a real P-256 key and secret: the fuzzer cannot make those up."""
        params = case.path_parameters if case.path_parameters is not None else {}
        for name, known in (("name", "welcome"), ("locale", "en")):
            value = params.get(name)
            if isinstance(value, str) and len(value) % 2 and value.isascii():
                params[name] = known
        body = case.body if isinstance(case.body, dict) else {}
        # Only what the fuzzer generated valid is made real: an invalid body must stay invalid.
        if case.path.endswith("/activate") and _valid(ActivateRequest, body):
            body["version"] = 1
        if case.path.endswith("/versions") and _valid(TemplateVersionRequest, body):
            channel = params.get("channel")
            body["body"] = "Hello {{ recipient.name }}"
            body["subject"] = None if channel == "sms" else "Welcome, {{ recipient.name }}"
            if channel != "email" or not isinstance(body.get("html"), str):
                body.pop("html", None)
            else:
                body["html"] = "<p>{{ recipient.name }}</p>"
        if case.path == "/api/v1/notifications/devices" and _valid(DeviceRequest, body):
            key = ec.generate_private_key(ec.SECP256R1()).public_key()
            body["keys"]["p256dh"] = b64url(key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))
            body["keys"]["auth"] = b64url(os.urandom(16))

    def _token_for(self, case: Case) -> dict[str, str]:
        if case.path.startswith("/api/v1/admin/"):
            return self.admin
        if (case.method, case.path) == ("DELETE", "/api/v1/users/me"):
            return self.leaver
        return self.customer


def _valid(model: type[BaseModel], body: dict[str, Any]) -> bool:
    try:
        model.model_validate(body)
    except ValidationError:
        return False
    return True


def _even_uuid(value: str) -> bool:
    try:
        return uuid.UUID(value).int % 2 == 0
    except ValueError:
        return False


async def _accounts(shop: RunningShop) -> Fuzzing:
    emails = {name: f"fuzz-{name}@example.com" for name in ("customer", "admin", "leaver", "target")}
    ids = {name: (await shop.register(email))["id"] for name, email in emails.items()}
    await shop.grant_admin(emails["admin"])
    admin = await shop.bearer(emails["admin"])
    for sku in [*(f"FUZZ-{n}" for n in range(100)), PATCHED_SKU]:  # by an admin, through the gateway
        product = {"sku": sku, "name": sku, "price_cents": 100, "currency": "EUR", "stock": FUZZ_STOCK}
        added = await shop.client.post("/api/v1/admin/products", json=product, headers=admin)
        assert added.status_code == 201, added.text
    customer = await shop.bearer(emails["customer"])
    device = await shop.client.post(
        "/api/v1/notifications/devices", json=shop.push.subscribe().json(), headers=customer
    )
    assert device.status_code == 201, device.text
    placed, to_ship = [
        await shop.client.post(
            "/api/v1/orders",
            json={"items": [{"sku": "FUZZ-0", "quantity": 1}], "currency": "EUR"},
            headers=customer | {"Idempotency-Key": str(uuid.uuid4())},
        )
        for _ in range(2)
    ]
    assert placed.status_code == to_ship.status_code == 201, placed.text + to_ship.text
    return Fuzzing(
        customer=customer,
        admin=admin,
        leaver=await shop.bearer(emails["leaver"]),
        order_id=placed.json()["id"],
        shipping_id=to_ship.json()["id"],
        target_id=ids["target"],
        device_id=device.json()["id"],
    )


# The gateway's public document, as a gateway builds it (no service, broker or thread needed):
# the test items are collected from it. `fuzzing` checks that the running gateway serves exactly
# this document at `/openapi.json`.
# (Not `schemathesis.pytest.from_fixture`, which would load it from the running gateway: with
# pytest 9.2 its lazy schemas fail on `Function._nodeid`, which pytest no longer has.)
_document_gateway = create_gateway(
    Shop().settings("gateway"), config=GatewayConfig("urn:iss", "urn:aud"), configure_logs=False
)
schema = schemathesis.openapi.from_dict(_document_gateway.openapi())
BRIDGE = LoopBridge()
schema.app = BRIDGE  # what `from_asgi` sets: cases (and the checks' own probes) go to this ASGI app


@pytest.fixture(scope="module")
def fuzzing(kafka_bootstrap: str) -> Iterator[Fuzzing]:
    runner = ShopThread(kafka_bootstrap, GATEWAY_ENV)
    with runner as shop:
        prepared = runner.run(_accounts(shop))
        assert runner.loop is not None
        BRIDGE.target = (shop.apps["gateway"], runner.loop)
        try:
            served = schemathesis.openapi.from_asgi("/openapi.json", BRIDGE)
            assert served.raw_schema == schema.raw_schema
            yield prepared
        finally:
            BRIDGE.target = None


@schema.parametrize()
# Schemathesis' own strategies use `random` (its problem, not the gateway's); under this project's
# warnings-as-errors hypothesis' deprecation notice would fail the first example, and only it.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    # Generating the negative and coverage cases may be slow or filter much: not the gateway's doing.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_public_operation_answers_5xx_or_off_its_document(case: Case, fuzzing: Fuzzing) -> None:
    fuzzing.prepare(case)
    response = case.call_and_validate()
    fuzzing.statuses[(f"{case.method} {case.path}", response.status_code)] += 1


# Their success needs a secret the fuzzer cannot guess (a password, a refresh token, an emailed
# link's token, the code of `phone/verify` sent by SMS to the number only); `fuzzing` logs in for
# real, and test_svc_accounts.py follows the links. A new verification link is for unverified
# accounts only, and the fuzzer's accounts are verified (409).
NOT_EXPECTED_TO_SUCCEED = {
    "POST /api/v1/auth/token",
    "POST /api/v1/auth/refresh",
    "POST /api/v1/auth/verify-email",
    "POST /api/v1/auth/password-reset/confirm",
    "POST /api/v1/auth/verify-email/resend",
    "POST /api/v1/notifications/phone/verify",
}


def test_the_fuzzing_got_through_on_every_operation(fuzzing: Fuzzing) -> None:
    """Every documented operation the fuzzer ran (above, in this module) succeeded at least once:
    it got past authentication, validation and lookups, and was checked against its document."""
    documented = {f"{m.upper()} {path}" for path, item in schema.raw_schema["paths"].items() for m in item}
    fuzzed = {operation for operation, _ in fuzzing.statuses if operation in documented}
    if not fuzzed:
        pytest.skip("the fuzz test did not run in this session")
    succeeded = {operation for operation, status in fuzzing.statuses if 200 <= status < 300}
    assert fuzzed - NOT_EXPECTED_TO_SUCCEED <= succeeded, sorted(fuzzing.statuses.items())


# What the fuzzing found, each a 500 from a service behind the gateway; the gateway refuses these
# now (`tests/unit/test_svc_gateway.py`), and so do the services themselves: both use the contracts.


async def test_an_order_of_free_items_only_is_refused_and_the_dearest_possible_is_paid(shop: RunningShop) -> None:
    """An order totalling 0 was stored, then its charge was refused (payments charges at least a
    cent) with a 500, every retry too; one above 10^11 cents likewise (payments' old maximum).
    Prices are the catalogue's now: free products exist, an order of only them is refused."""
    user = await shop.register("free@example.com")
    await shop.add_product("GIFT", price_cents=0)
    free = {"items": [{"sku": "GIFT", "quantity": 2}], "currency": "EUR"}
    through_gateway = await shop.client.post(
        "/api/v1/orders", json=free, headers=await shop.bearer("free@example.com") | {"Idempotency-Key": "free-1"}
    )
    assert through_gateway.status_code == 422, through_gateway.text
    identity = {"X-User-Id": user["id"], "X-User-Roles": "customer", "Idempotency-Key": "free-2"}
    identity |= shop.platform.caller_headers("gateway", "orders")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=shop.apps["orders"]), base_url="http://o") as orders:
        direct = await orders.post("/api/v1/orders", json=free, headers=identity)
    assert direct.status_code == 422 and direct.json()["error"]["code"] == "nothing_to_pay", direct.text
    assert rows(shop.uris["orders"], "SELECT count(*) FROM orders") == [(0,)]

    skus = [f"DEAR-{n}" for n in range(MAX_ITEMS)]
    for sku in skus:
        await shop.add_product(sku, price_cents=MAX_UNIT_PRICE_CENTS, stock=MAX_QUANTITY)
    dearest = {"items": [{"sku": sku, "quantity": MAX_QUANTITY} for sku in skus], "currency": "EUR"}
    placed = await shop.client.post(
        "/api/v1/orders", json=dearest, headers=await shop.bearer("free@example.com") | {"Idempotency-Key": "dear-1"}
    )
    assert placed.status_code == 201, placed.text
    assert (placed.json()["status"], placed.json()["total_cents"]) == ("paid", MAX_TOTAL_CENTS)
    assert rows(shop.uris["payments"], "SELECT amount_cents, status FROM payments") == [(MAX_TOTAL_CENTS, "succeeded")]


async def test_logging_in_with_nul_in_the_email_is_refused_not_a_server_error(shop: RunningShop) -> None:
    """PostgreSQL text cannot hold NUL: the users service's lookup by email failed with a 500."""
    login = {"email": "ada\u0000@example.com", "password": "correct horse battery"}
    assert (await shop.client.post("/api/v1/auth/token", json=login)).status_code == 422
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=shop.apps["users"]),
        base_url="http://u",
        headers=shop.platform.caller_headers("gateway", "users"),
    ) as users:
        direct = await users.post("/api/v1/auth/token", json=login)
    assert direct.status_code == 422 and direct.json()["error"]["code"] == "validation_failed", direct.text
