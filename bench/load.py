"""bench/load: the customer journey under load, through the gateway of the e-commerce example run
by `keelson dev run` on the local stack (real uvicorn processes, PostgreSQL, Kafka, SMTP sink).

    python bench/load.py [--customers 8] [--seconds 60] [--state-dir DIR] [--namespace load]
    python bench/load.py --smoke [--state-dir DIR] [--namespace NS] [--platform NAME]

Before the phases, the catalogue gets its product (`SKU-1`, 12.50 EUR, stock for any run),
added by an admin: straight at the orders service as the gateway forwards an admin's request.

Phase 1, the journey: `--customers` concurrent customers, each repeating browse the catalogue ->
register -> log in -> receive the verification email (at the stack's mail sink) -> verify the email
(an unverified account may not order: docs/accounts.md) -> order the product by SKU -> read the
order -> list their notifications for `--seconds`. Every step is checked
(status codes, the order `paid`); a failed check is an error, counted and printed. Figures:
orders per second and p50/p99 of the whole journey and of each step.

Phase 2, the gateway's cost: the same customers, already logged in, place orders alternately
through the gateway and directly at the orders service (with the identity headers the gateway
would have forwarded), at the same concurrency, for `--seconds`. The ratio of the two p50s is the
gateway's added latency (target: under 1.3).

`--smoke` is one journey, then the payment at the payments service and the "paid" email at the
sink; it exits non-zero if anything is missing. e2e/test_dev_run.py runs it.

The stack is started if needed; the example is applied into `--namespace` unless a platform of
that name is there already (its domain is immutable), with the gateway trusting one proxy hop so
each simulated customer is its own rate-limit client (`X-Forwarded-For`), as behind an ingress.
The load generator shares the machine's cores with the five services: the figures are for the
whole thing on one box, not a service's ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as host
import re
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keelson.devstack import processes, services  # noqa: E402
from keelson.devstack.paths import default_state_dir  # noqa: E402
from keelson.devstack.stack import LocalStack  # noqa: E402

EXAMPLE = ROOT / "examples" / "ecommerce.yaml"
PASSWORD = "correct horse battery staple"
PRODUCT = {"sku": "SKU-1", "name": "Anchor", "price_cents": 1250, "currency": "EUR", "stock": 1_000_000_000}
ORDER = {"items": [{"sku": "SKU-1", "quantity": 2}], "currency": "EUR"}
ADMIN = {"X-User-Id": "bench-admin", "X-User-Roles": "admin"}  # as the gateway forwards an admin
TIMEOUT = 30.0
LINK = re.compile(r"/verify-email\?token=([A-Za-z0-9_-]+)")


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


class CheckFailed(Exception):
    """A step answered, but not what the journey expects."""


def expect(response: httpx.Response, status: int) -> Any:
    if response.status_code != status:
        raise CheckFailed(f"{response.request.method} {response.request.url.path} -> {response.status_code}")
    return response.json() if response.content else None


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of `values`, in milliseconds from seconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1] * 1000


@dataclass
class Recorder:
    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)

    async def time(self, step: str, call: Callable[[], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        result = await call()
        self.samples[step].append(time.perf_counter() - started)
        return result


@dataclass
class Customer:
    email: str
    address: str  # the client address a proxy in front of the gateway would report
    user_id: str = ""
    token: str = ""

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "X-Forwarded-For": self.address}

    def identity(self) -> dict[str, str]:
        """What the gateway forwards to the orders service for this customer."""
        return {"X-User-Id": self.user_id, "X-User-Roles": "customer"}


class Mailbox:
    """The stack's mail sink (`<state dir>/mail/*.eml`), read as mail arrives: each file is read
    once and its verification link indexed by recipient, so finding a customer's link costs the
    new files only, however long the run."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._seen: set[str] = set()
        self._links: dict[str, str] = {}

    def _scan(self) -> None:
        if not self.directory.is_dir():
            return
        for entry in os.scandir(self.directory):
            if entry.name in self._seen or not entry.name.endswith(".eml"):
                continue
            self._seen.add(entry.name)
            message = message_from_bytes(Path(entry.path).read_bytes())
            for part in message.walk():
                payload = part.get_payload(decode=True) if part.get_content_type() == "text/plain" else None
                found = LINK.search(payload.decode(errors="replace")) if isinstance(payload, bytes) else None
                if found:
                    self._links[str(message["To"])] = found[1]

    async def verification_token(self, email: str) -> str:
        deadline = time.monotonic() + TIMEOUT
        while (token := self._links.get(email)) is None:
            self._scan()
            if email in self._links:
                continue
            if time.monotonic() > deadline:
                raise CheckFailed(f"no verification email for {email} within {TIMEOUT:.0f} s")
            await asyncio.sleep(0.05)  # the mail sink writes files; it has nothing to wait on
        return token


def new_customer(number: int) -> Customer:
    return Customer(
        f"load.{uuid.uuid4().hex[:10]}@example.com", f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"
    )


async def journey(gateway: httpx.AsyncClient, customer: Customer, rec: Recorder, mailbox: Mailbox) -> dict[str, Any]:
    """Browse, register, log in, verify the email, order, read the order, list notifications;
    every answer checked."""
    started = time.perf_counter()
    anonymous = {"X-Forwarded-For": customer.address}
    catalogue = expect(
        await rec.time("browse catalogue", lambda: gateway.get("/api/v1/products", headers=anonymous)), 200
    )
    if not any(p["sku"] == ORDER["items"][0]["sku"] and p["available"] > 0 for p in catalogue["items"]):
        raise CheckFailed(f"the catalogue has no {ORDER['items'][0]['sku']} in stock")
    user = expect(
        await rec.time(
            "register",
            lambda: gateway.post(
                "/api/v1/users", json={"email": customer.email, "password": PASSWORD, "name": "Load"}, headers=anonymous
            ),
        ),
        201,
    )
    customer.user_id = user["id"]
    tokens = expect(
        await rec.time(
            "log in",
            lambda: gateway.post(
                "/api/v1/auth/token", json={"email": customer.email, "password": PASSWORD}, headers=anonymous
            ),
        ),
        200,
    )
    customer.token = tokens["access_token"]
    link = await rec.time("receive verification email", lambda: mailbox.verification_token(customer.email))
    verified = await rec.time(
        "verify email",
        lambda: gateway.post("/api/v1/auth/verify-email", json={"token": link}, headers=anonymous),
    )
    if verified.status_code != 204:
        raise CheckFailed(f"verify email: {verified.status_code} {verified.text[:200]}")
    order = expect(
        await rec.time(
            "place order",
            lambda: gateway.post(
                "/api/v1/orders", json=ORDER, headers=customer.bearer() | {"Idempotency-Key": str(uuid.uuid4())}
            ),
        ),
        201,
    )
    if order["status"] != "paid":
        raise CheckFailed(f"order {order['id']} is {order['status']}, not paid")
    read = expect(
        await rec.time("read order", lambda: gateway.get(f"/api/v1/orders/{order['id']}", headers=customer.bearer())),
        200,
    )
    if read["id"] != order["id"]:
        raise CheckFailed("GET /orders/{id} answered another order")
    expect(
        await rec.time("list notifications", lambda: gateway.get("/api/v1/notifications", headers=customer.bearer())),
        200,
    )
    rec.samples["journey"].append(time.perf_counter() - started)
    return dict(order)


async def until(deadline: float, body: Callable[[], Awaitable[None]], rec: Recorder) -> None:
    while time.monotonic() < deadline:
        try:
            await body()
        except (CheckFailed, httpx.HTTPError) as error:
            rec.errors[str(error) or type(error).__name__] += 1


async def phase_journey(
    gateway_url: str, customers: int, seconds: float, mailbox: Mailbox
) -> tuple[Recorder, float, list[Customer]]:
    rec, done = Recorder(), []
    limits = httpx.Limits(max_connections=customers * 2)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=TIMEOUT, limits=limits) as gateway:
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        counter = iter(range(1, 1 << 30))

        async def worker() -> None:
            async def one() -> None:
                customer = new_customer(next(counter))
                await journey(gateway, customer, rec, mailbox)
                done.append(customer)

            await until(deadline, one, rec)

        await asyncio.gather(*(worker() for _ in range(customers)))
        elapsed = time.monotonic() - started
    return rec, elapsed, done


async def phase_overhead(
    gateway_url: str, orders_url: str, customers: list[Customer], seconds: float, as_gateway: dict[str, str]
) -> tuple[Recorder, float]:
    """Orders through the gateway and straight to the orders service, interleaved per worker so
    both paths see the same load at the same time."""
    rec = Recorder()
    limits = httpx.Limits(max_connections=len(customers) * 2)
    async with (
        httpx.AsyncClient(base_url=gateway_url, timeout=TIMEOUT, limits=limits) as gateway,
        httpx.AsyncClient(base_url=orders_url, timeout=TIMEOUT, limits=limits, headers=as_gateway) as direct,
    ):
        deadline = time.monotonic() + seconds
        started = time.monotonic()

        async def worker(index: int, customer: Customer) -> None:
            turn = index % 2  # half the workers start with each path

            async def one() -> None:
                nonlocal turn
                key = {"Idempotency-Key": str(uuid.uuid4())}
                if turn == 0:
                    call = lambda: gateway.post("/api/v1/orders", json=ORDER, headers=customer.bearer() | key)  # noqa: E731
                    order = expect(await rec.time("order via gateway", call), 201)
                else:
                    call = lambda: direct.post("/api/v1/orders", json=ORDER, headers=customer.identity() | key)  # noqa: E731
                    order = expect(await rec.time("order direct to orders", call), 201)
                if order["status"] != "paid":
                    raise CheckFailed(f"order {order['id']} is {order['status']}, not paid")
                turn = 1 - turn

            await until(deadline, one, rec)

        await asyncio.gather(*(worker(i, c) for i, c in enumerate(customers)))
        elapsed = time.monotonic() - started
    return rec, elapsed


def cpu_seconds(state_dir: Path, platform: str, namespace: str) -> dict[str, float]:
    """CPU time (user + system) so far of each of the stack's process groups (a service, Kafka,
    PostgreSQL with its backends, ...) and of this load generator."""
    groups: dict[int, str] = {}
    prefix = services.process_name(namespace, platform, "")
    for name in processes.running_names(state_dir):
        record = processes.read_record(state_dir, name)
        if record is not None:
            groups[record.pid] = name.removeprefix(prefix)
    ticks = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = defaultdict(float)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        fields = text[text.rindex(")") + 2 :].split()  # from field 3 (state) on
        # Field 5, the process group; PostgreSQL's backends lead sessions of their own, so field
        # 4, the parent, for them.
        group = groups.get(int(fields[2])) or groups.get(int(fields[1]))
        if group is not None:
            totals[group] += (int(fields[11]) + int(fields[12])) / ticks  # fields 14, 15: utime, stime
    own = os.times()
    totals["load generator"] = own.user + own.system
    return dict(totals)


def cpu_table(before: dict[str, float], after: dict[str, float], seconds: float) -> list[str]:
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    rows = ["| process | CPU s | cores |", "| --- | ---: | ---: |"]
    for name, value in sorted(used.items(), key=lambda item: -item[1]):
        if value >= 0.05 * seconds / 10:
            rows.append(f"| {name} | {value:.1f} | {value / seconds:.2f} |")
    total = sum(used.values())
    rows.append(f"| all | {total:.1f} | {total / seconds:.2f} |")
    return rows


def service_token(stack: LocalStack, namespace: str, platform: str, caller: str, callee: str) -> dict[str, str]:
    """What `caller` proves itself with to `callee` (render/callers.py): a ServiceAccount token the
    API server mints, as the kubelet does for the pod. For calling a service directly, as its
    declared caller would."""
    audience = f"keelson.dev/{namespace}/{platform}/{callee}"
    token = stack.kubectl().run(["create", "token", caller, "-n", namespace, f"--audience={audience}"]).strip()
    return {"Authorization": f"Bearer {token}"}


async def stock_catalogue(orders_url: str, as_gateway: dict[str, str]) -> None:
    """The product the journey orders, with stock for any run (topped up if it is there)."""
    async with httpx.AsyncClient(base_url=orders_url, timeout=TIMEOUT, headers=as_gateway | ADMIN) as orders:
        added = await orders.post("/api/v1/admin/products", json=PRODUCT)
        if added.status_code == 409:
            added = await orders.patch(f"/api/v1/admin/products/{PRODUCT['sku']}", json={"stock": PRODUCT["stock"]})
        if added.status_code not in (200, 201):
            raise CheckFailed(f"stocking the catalogue: {added.status_code} {added.text[:200]}")


def prepare(state_dir: Path | None, platform: str, namespace: str) -> tuple[LocalStack, str, str]:
    """The stack up, the example applied (unless already there) and Ready, its services running."""
    stack = LocalStack(state_dir or default_state_dir())
    stack.up(kafka=True, postgres=True, operator=True, progress=log)
    kubectl = stack.kubectl()
    present = kubectl.run(["get", "-n", namespace, "msp", platform, "--ignore-not-found", "-o", "name"])
    if not present.strip():
        doc = yaml.safe_load(EXAMPLE.read_text())
        doc["metadata"]["name"] = platform
        gateway = next(s for s in doc["spec"]["services"] if s["name"] == doc["spec"]["gateway"]["service"])
        gateway["env"] = [{"name": "KEELSON_GATEWAY_TRUSTED_PROXIES", "value": "127.0.0.1/32"}]
        stack.apply_manifest(yaml.safe_dump(doc), namespace, progress=log)
    log(f"waiting for {namespace}/{platform} to be Ready")
    kubectl.run(["wait", "-n", namespace, f"msp/{platform}", "--for=condition=Ready", "--timeout=300s"])
    gateway_url = services.run_platform(stack.state_dir, kubectl, platform, namespace, progress=log)
    return stack, gateway_url, services.service_urls(stack.state_dir, platform, namespace)["orders"]


async def smoke(stack: LocalStack, gateway_url: str, platform: str, namespace: str) -> list[str]:
    """One journey, then its payment and its email: the problems found (none: it works)."""
    rec = Recorder()
    async with httpx.AsyncClient(base_url=gateway_url, timeout=TIMEOUT) as gateway:
        order = await journey(gateway, new_customer(1), rec, Mailbox(stack.state_dir / "mail"))
    problems = []
    payments = services.service_urls(stack.state_dir, platform, namespace)["payments"]
    as_orders = service_token(stack, namespace, platform, "orders", "payments")
    async with httpx.AsyncClient(timeout=TIMEOUT, headers=as_orders) as http:
        payment = await http.get(f"{payments}/api/v1/payments/{order['payment_id']}")
    if payment.status_code != 200 or payment.json().get("status") != "succeeded":
        problems.append(f"payment {order['payment_id']}: {payment.status_code} {payment.text[:200]}")
    subject = f"Your order {order['id'][:8]} is paid"
    deadline = time.monotonic() + TIMEOUT
    while not [p for p in (stack.state_dir / "mail").glob("*.eml") if subject in p.read_text(errors="replace")]:
        if time.monotonic() > deadline:
            problems.append(f"no email {subject!r} at the sink within {TIMEOUT:.0f} s")
            break
        await asyncio.sleep(0.2)
    print(f"smoke: order {order['id']} paid, journey {rec.samples['journey'][0] * 1000:.0f} ms")
    return problems


def table(rec: Recorder, steps: list[str]) -> list[str]:
    rows = ["| step | count | p50 (ms) | p99 (ms) |", "| --- | ---: | ---: | ---: |"]
    for step in steps:
        values = rec.samples.get(step, [])
        rows.append(f"| {step} | {len(values)} | {percentile(values, 50):.1f} | {percentile(values, 99):.1f} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=8, help="concurrent customers (default: 8)")
    parser.add_argument("--seconds", type=float, default=60, help="length of each phase (default: 60)")
    parser.add_argument("--state-dir", type=Path, help="the local stack (default: keelson dev's default)")
    parser.add_argument("--platform", default="shop", help="the platform's name (default: shop)")
    parser.add_argument("--namespace", default="load", help="its namespace (default: load)")
    parser.add_argument("--smoke", action="store_true", help="one checked journey; non-zero exit on a problem")
    args = parser.parse_args()

    stack, gateway_url, orders_url = prepare(args.state_dir, args.platform, args.namespace)
    as_gateway = service_token(stack, args.namespace, args.platform, "gateway", "orders")
    asyncio.run(stock_catalogue(orders_url, as_gateway))
    if args.smoke:
        problems = asyncio.run(smoke(stack, gateway_url, args.platform, args.namespace))
        for problem in problems:
            print(f"smoke: FAILED: {problem}", file=sys.stderr)
        return 1 if problems else 0

    def cpu() -> dict[str, float]:
        return cpu_seconds(stack.state_dir, args.platform, args.namespace)

    log(f"phase 1: {args.customers} customers on the journey for {args.seconds:.0f} s via {gateway_url}")
    cpu_start = cpu()
    mailbox = Mailbox(stack.state_dir / "mail")
    journeys, journey_seconds, customers = asyncio.run(
        phase_journey(gateway_url, args.customers, args.seconds, mailbox)
    )
    cpu_journey = cpu()
    if len(customers) < args.customers:
        log(f"only {len(customers)} journeys completed; errors: {dict(journeys.errors)}")
        return 1
    log(f"phase 2: {args.customers} customers ordering via the gateway and direct ({orders_url})")
    overhead, overhead_seconds = asyncio.run(
        phase_overhead(
            gateway_url,
            orders_url,
            customers[: args.customers],
            args.seconds,
            as_gateway,
        )
    )
    cpu_orders = cpu()

    completed = len(journeys.samples["journey"])
    via = percentile(overhead.samples["order via gateway"], 50)
    direct = percentile(overhead.samples["order direct to orders"], 50)
    orders_phase2 = sum(len(overhead.samples[s]) for s in ("order via gateway", "order direct to orders"))
    print(
        f"load benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {host.node()}, {os.cpu_count()} cores, "
        f"Python {host.python_version()}, {args.customers} concurrent customers, {args.seconds:.0f} s per phase"
    )
    print()
    print(
        f"Journey: {completed} journeys in {journey_seconds:.1f} s = {completed / journey_seconds:.1f} orders/s "
        f"(one order per journey), errors {sum(journeys.errors.values())}"
    )
    print()
    print(
        "\n".join(
            table(
                journeys,
                [
                    "journey",
                    "browse catalogue",
                    "register",
                    "log in",
                    "receive verification email",
                    "verify email",
                    "place order",
                    "read order",
                    "list notifications",
                ],
            )
        )
    )
    print()
    print(
        f"Orders only: {orders_phase2} orders in {overhead_seconds:.1f} s = {orders_phase2 / overhead_seconds:.1f} "
        f"orders/s, errors {sum(overhead.errors.values())}"
    )
    print()
    print("\n".join(table(overhead, ["order via gateway", "order direct to orders"])))
    print()
    print(f"Gateway added latency: p50 via gateway / p50 direct = {via:.1f} / {direct:.1f} ms = {via / direct:.2f}x")
    print()
    print("Where the CPU went, journey phase (left) and orders-only phase (right):")
    print()
    left = cpu_table(cpu_start, cpu_journey, journey_seconds)
    right = cpu_table(cpu_journey, cpu_orders, overhead_seconds)
    print("\n".join(left))
    print()
    print("\n".join(right))
    print()
    errors = journeys.errors + overhead.errors
    if errors:
        print(f"errors: {json.dumps(dict(errors))}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
