"""The shape every service's lifespan has: open the database, apply the migrations, start the
background components (outbox relay, consumer), serve, then stop them in reverse order, close the
clients, close the database, and send the exported spans that still wait (`observability.spans`;
nothing to do when export is off), so that a SIGTERM loses none.

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with lifecycle.running(parts.db, migrations, [parts.relay, parts.consumer], close=[parts.client]):
            yield

`None` components (a relay or consumer the service was configured without) are skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from keelson_services.db import Database, Migration, migrate
from keelson_services.observability import spans


class Component(Protocol):
    """Runs in the background while the service serves (`OutboxRelay`, `ConsumerRunner`)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class Client(Protocol):
    async def aclose(self) -> None: ...


@asynccontextmanager
async def running(
    db: Database | None,
    migrations: Sequence[Migration] = (),
    components: Sequence[Component | None] = (),
    *,
    close: Sequence[Client] = (),
    prepare: Callable[[], Awaitable[object]] | None = None,
) -> AsyncIterator[None]:
    """Open `db` and apply `migrations`, await `prepare` (anything to do before serving), start
    the `components` in order; on the way out stop those started in reverse order, close the
    clients in `close`, then the database, and flush the spans."""
    started: list[Component] = []
    if db is not None:
        await db.open()
    try:
        if db is not None:
            await migrate(db, migrations)
        if prepare is not None:
            await prepare()
        for component in components:
            if component is not None:
                component.start()
                started.append(component)
        yield
    finally:
        try:
            for component in reversed(started):
                await component.stop()
        finally:
            try:
                for client in close:
                    await client.aclose()
            finally:
                try:
                    if db is not None:
                        await db.close()
                finally:
                    await spans.flush()
