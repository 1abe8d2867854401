"""The payment-provider adapter, and the fake provider the service ships for tests and demos.

A provider takes an operation key with every charge and refund and deduplicates on it, the way
real providers' idempotency keys work: asking again with the same key returns the first result
and moves no money. The payments service derives the keys from its own payment and refund ids,
so a request re-run after a crash can never charge twice.

The fake keeps its ledger in a `Ledger` (the service's database in production, memory in unit
tests), waits `latency_seconds` per operation and declines a charge with probability
`failure_rate` (card declined), and a refund with probability `refund_failure_rate` (0 unless
set: the way to test what a declined refund does to the services that ask for it).
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from keelson_services.db import Database

Kind = Literal["charge", "refund"]


@dataclass(frozen=True)
class ProviderResult:
    reference: str  # the provider's id of the operation
    succeeded: bool
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True)
class Operation:
    key: str
    kind: Kind
    amount_cents: int
    currency: str | None
    result: ProviderResult


class ProviderKeyReusedError(RuntimeError):
    """The same operation key came with a different operation: a bug in the caller."""


class PaymentProvider(Protocol):
    async def charge(self, *, key: str, amount_cents: int, currency: str, customer_id: str) -> ProviderResult: ...

    async def refund(self, *, key: str, charge_reference: str, amount_cents: int) -> ProviderResult: ...


class Ledger(Protocol):
    async def get(self, key: str) -> Operation | None: ...

    async def add(self, operation: Operation) -> Operation:
        """Record `operation` unless its key is taken; returns the operation recorded under the key."""
        ...


class MemoryLedger:
    def __init__(self) -> None:
        self.operations: dict[str, Operation] = {}

    async def get(self, key: str) -> Operation | None:
        return self.operations.get(key)

    async def add(self, operation: Operation) -> Operation:
        return self.operations.setdefault(operation.key, operation)


class DatabaseLedger:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, key: str) -> Operation | None:
        async with self.db.connection() as conn:
            cursor = await conn.execute("SELECT * FROM fake_provider_operations WHERE key = %s", [key])
            row = await cursor.fetchone()
        if row is None:
            return None
        return Operation(
            key=row["key"],
            kind=row["kind"],
            amount_cents=row["amount_cents"],
            currency=row["currency"],
            result=ProviderResult(row["reference"], row["succeeded"], row["failure_code"], row["failure_message"]),
        )

    async def add(self, operation: Operation) -> Operation:
        r = operation.result
        async with self.db.connection() as conn:
            await conn.execute(
                """
                INSERT INTO fake_provider_operations
                    (key, kind, amount_cents, currency, reference, succeeded, failure_code, failure_message)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (key) DO NOTHING
                """,
                [
                    operation.key,
                    operation.kind,
                    operation.amount_cents,
                    operation.currency,
                    r.reference,
                    r.succeeded,
                    r.failure_code,
                    r.failure_message,
                ],
            )
        recorded = await self.get(operation.key)
        assert recorded is not None
        return recorded


class FakeProvider:
    def __init__(
        self,
        ledger: Ledger,
        *,
        latency_seconds: float = 0.0,
        failure_rate: float = 0.0,
        refund_failure_rate: float = 0.0,
        random: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not (0.0 <= failure_rate <= 1.0 and 0.0 <= refund_failure_rate <= 1.0):
            raise ValueError("failure_rate and refund_failure_rate must be between 0 and 1")
        self.ledger = ledger
        self.latency_seconds = latency_seconds
        self.failure_rate = failure_rate
        self.refund_failure_rate = refund_failure_rate
        self._random = random
        self._sleep = sleep

    async def charge(self, *, key: str, amount_cents: int, currency: str, customer_id: str) -> ProviderResult:
        seen = await self._seen(key, "charge", amount_cents)
        if seen is not None:
            return seen
        await self._wait()
        reference = "ch_" + secrets.token_hex(12)
        if self._random() < self.failure_rate:
            result = ProviderResult(reference, False, "card_declined", "The card was declined")
        else:
            result = ProviderResult(reference, True)
        recorded = await self.ledger.add(Operation(key, "charge", amount_cents, currency, result))
        return recorded.result

    async def refund(self, *, key: str, charge_reference: str, amount_cents: int) -> ProviderResult:
        seen = await self._seen(key, "refund", amount_cents)
        if seen is not None:
            return seen
        await self._wait()
        reference = "re_" + secrets.token_hex(12)
        if self._random() < self.refund_failure_rate:
            result = ProviderResult(reference, False, "refund_declined", "The refund was declined")
        else:
            result = ProviderResult(reference, True)
        recorded = await self.ledger.add(Operation(key, "refund", amount_cents, None, result))
        return recorded.result

    async def _seen(self, key: str, kind: Kind, amount_cents: int) -> ProviderResult | None:
        found = await self.ledger.get(key)
        if found is None:
            return None
        if found.kind != kind or found.amount_cents != amount_cents:
            raise ProviderKeyReusedError(f"provider key {key!r} was used for another operation")
        return found.result

    async def _wait(self) -> None:
        if self.latency_seconds > 0:
            await self._sleep(self.latency_seconds)
