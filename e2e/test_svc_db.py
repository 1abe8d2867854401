"""The services' database layer against a real PostgreSQL: migrations that replicas can run
together, and the idempotency-key store payments relies on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from e2e.svc_postgres import fresh_database
from keelson_services.db import Database, Migration, MigrationError, load_migrations, migrate
from keelson_services.idempotency import (
    IdempotencyStore,
    KeyReusedError,
    RequestInFlightError,
    StoredResponse,
    fingerprint,
    migrations,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    with fresh_database("lib") as uri:
        database = Database(uri, max_size=60)
        await database.open(timeout_seconds=10)
        try:
            yield database
        finally:
            await database.close()


def tables(uri: str) -> set[str]:
    with psycopg.connect(uri) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


SCHEMA = [
    Migration("shop", 1, "things", "CREATE TABLE things (id serial PRIMARY KEY, name text NOT NULL);"),
    Migration(
        "shop", 2, "thing_sizes", "ALTER TABLE things ADD COLUMN size int; CREATE INDEX things_size ON things (size);"
    ),
]


async def test_migrations_apply_once_in_order_and_then_do_nothing(db: Database) -> None:
    assert [m.version for m in await migrate(db, SCHEMA)] == [1, 2]
    assert await migrate(db, SCHEMA) == []
    assert {"things", "schema_migrations"} <= tables(db.uri)


async def test_replicas_starting_together_apply_each_migration_exactly_once(db: Database) -> None:
    results = await asyncio.gather(*(migrate(db, SCHEMA) for _ in range(5)))
    assert sorted(len(r) for r in results) == [0, 0, 0, 0, 2]
    with psycopg.connect(db.uri) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (2,)


async def test_an_applied_migration_that_was_edited_stops_start_up(db: Database) -> None:
    await migrate(db, SCHEMA)
    edited = [SCHEMA[0], Migration("shop", 2, "thing_sizes", "ALTER TABLE things ADD COLUMN weight int;")]
    with pytest.raises(MigrationError, match="forward-only"):
        await migrate(db, edited)


async def test_a_failing_migration_leaves_nothing_behind(db: Database) -> None:
    broken = [*SCHEMA, Migration("shop", 3, "broken", "CREATE TABLE half (id int); SELECT no_such_function();")]
    with pytest.raises(psycopg.errors.UndefinedFunction):
        await migrate(db, broken)
    assert "half" not in tables(db.uri)
    assert [m.version for m in await migrate(db, SCHEMA)] == []  # 1 and 2 had committed


def test_migration_files_are_found_in_a_package_and_named_strictly(tmp_path: Path) -> None:
    assert [m.name for m in migrations()] == ["idempotency_keys", "released_keys"]
    assert [m.version for m in load_migrations("keelson_services.services.users", "users")] == [1, 2, 3, 4, 5]


# --- idempotency keys ---------------------------------------------------------------------------


@pytest.fixture
async def store(db: Database) -> IdempotencyStore:
    await migrate(db, migrations())
    return IdempotencyStore(db)


CHARGE = fingerprint("POST", "/charges", {"amount_cents": 500, "currency": "EUR"})


def test_fingerprints_compare_bodies_by_value() -> None:
    assert fingerprint("post", "/charges", {"currency": "EUR", "amount_cents": 500}) == CHARGE
    assert fingerprint("POST", "/charges", {"amount_cents": 501, "currency": "EUR"}) != CHARGE
    assert fingerprint("POST", "/refunds", {"amount_cents": 500, "currency": "EUR"}) != CHARGE


async def test_fifty_concurrent_requests_with_one_key_run_once(store: IdempotencyStore) -> None:
    runs, refused = 0, 0
    gate, all_refused = asyncio.Event(), asyncio.Event()

    async def charge() -> StoredResponse:
        nonlocal runs
        runs += 1
        await gate.wait()  # still running while all the others arrive
        return StoredResponse(201, b'{"id": "ch_1"}', {"content-type": "application/json"})

    async def request() -> str:
        nonlocal refused
        try:
            await store.run(scope="user-1", key="k1", request_fingerprint=CHARGE, handler=charge)
        except RequestInFlightError:
            refused += 1
            if refused == 49:
                all_refused.set()
            return "409"
        return "ran"

    pending = [asyncio.create_task(request()) for _ in range(50)]
    async with asyncio.timeout(10):
        await all_refused.wait()  # everyone but the runner has had an answer
    gate.set()
    outcomes = await asyncio.gather(*pending)
    assert runs == 1 and sorted(outcomes).count("409") == 49 and outcomes.count("ran") == 1

    replay, replayed = await store.run(scope="user-1", key="k1", request_fingerprint=CHARGE, handler=charge)
    assert replayed and replay == StoredResponse(201, b'{"id": "ch_1"}', {"content-type": "application/json"})
    assert runs == 1


async def test_the_same_key_with_another_request_is_refused(store: IdempotencyStore) -> None:
    async def charge() -> StoredResponse:
        return StoredResponse(201, b"{}")

    await store.run(scope="user-1", key="k1", request_fingerprint=CHARGE, handler=charge)
    other = fingerprint("POST", "/charges", {"amount_cents": 9999, "currency": "EUR"})
    with pytest.raises(KeyReusedError) as refused:
        await store.begin("user-1", "k1", other)
    assert refused.value.status_code == 422
    assert await store.begin("user-2", "k1", other) is None  # keys are scoped (per caller)


async def test_a_refused_request_releases_its_key_but_a_crash_holds_it_until_the_lease_ends(
    store: IdempotencyStore,
) -> None:
    from keelson_services.errors import ApiError

    async def invalid() -> StoredResponse:
        raise ApiError(400, "bad_card", "The card was declined before charging")

    with pytest.raises(ApiError):
        await store.run(scope="u", key="k-refused", request_fingerprint=CHARGE, handler=invalid)
    # Still bound to its request: another body with the key is a 422, whatever happened before.
    other = fingerprint("POST", "/charges", {"amount_cents": 9999, "currency": "EUR"})
    with pytest.raises(KeyReusedError):
        await store.begin("u", "k-refused", other)
    assert await store.begin("u", "k-refused", CHARGE) is None  # free again for the same request

    async def crash() -> StoredResponse:
        raise RuntimeError("provider timed out after charging")

    with pytest.raises(RuntimeError):
        await store.run(scope="u", key="k-crash", request_fingerprint=CHARGE, handler=crash)
    with pytest.raises(RequestInFlightError):
        await store.begin("u", "k-crash", CHARGE)
    expired = IdempotencyStore(store.db, lease=timedelta(seconds=-1))
    await expired.begin("u", "k-other", CHARGE)
    assert await expired.begin("u", "k-other", CHARGE) is None  # a lapsed claim can be taken over


async def test_completed_keys_can_be_purged(store: IdempotencyStore) -> None:
    async def charge() -> StoredResponse:
        return StoredResponse(201, b"{}")

    await store.run(scope="u", key="old", request_fingerprint=CHARGE, handler=charge)
    assert await store.purge(timedelta(hours=24)) == 0
    assert await store.purge(timedelta(seconds=-1)) == 1


async def test_the_purger_forgets_completed_released_and_abandoned_keys_after_retention(
    store: IdempotencyStore,
) -> None:
    from keelson_services.errors import ApiError
    from keelson_services.idempotency import IdempotencyPurger

    async def charge() -> StoredResponse:
        return StoredResponse(201, b"{}")

    async def refused() -> StoredResponse:
        raise ApiError(503, "payments_unavailable", "no verdict")

    await store.run(scope="u", key="done", request_fingerprint=CHARGE, handler=charge)
    with pytest.raises(ApiError):
        await store.run(scope="u", key="released", request_fingerprint=CHARGE, handler=refused)
    await store.begin("u", "running", CHARGE)  # in progress, its lease still running
    kept = IdempotencyPurger(store)  # the default retention: nothing is that old yet
    assert await kept.purge_once() == 0
    # With a retention already past, only what no request still holds goes.
    assert await IdempotencyPurger(store, retention=timedelta(seconds=-1)).purge_once() == 2
    with pytest.raises(RequestInFlightError):
        await store.begin("u", "running", CHARGE)
    assert await store.begin("u", "done", CHARGE) is None  # forgotten: a new request may use it
