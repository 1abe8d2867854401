"""Templates in the database, managed through the admin API: versions per (name, channel,
locale), one active; every change in an audit table. Start-up seeds version 1 of locale `en` of
every template the package's files define (`rendering.Renderer.files`), for each that has no
row yet, so a template file added in a release becomes a default without a migration.

A notification uses the active version of the first locale of the recipient's chain that has
one: `de-AT` → `de` → `en` (`locales`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from keelson_services.contracts.notifications import LOCALE_PATTERN
from keelson_services.db import Database
from keelson_services.services.notifications.rendering import Channel, Renderer, TemplateSource

DEFAULT_LOCALE = "en"
SEED_ACTOR = "seed"
# A language, an optional script and an optional region (BCP 47's common subset): en, de-AT, zh-Hant-TW.
LOCALE = re.compile(LOCALE_PATTERN)


def normalise_locale(raw: str | None) -> str | None:
    """`raw` in canonical case (`de_at` → `de-AT`), or None when it is no locale."""
    if not raw:
        return None
    parts = raw.replace("_", "-").split("-")
    fixed = [parts[0].lower()] + [p.title() if len(p) == 4 else p.upper() for p in parts[1:]]
    locale = "-".join(fixed)
    return locale if LOCALE.fullmatch(locale) else None


def locales(locale: str | None) -> list[str]:
    """The fallback chain of `locale`: itself, each shorter prefix, then the default."""
    chain: list[str] = []
    parts = (normalise_locale(locale) or DEFAULT_LOCALE).split("-")
    for end in range(len(parts), 0, -1):
        chain.append("-".join(parts[:end]))
    if DEFAULT_LOCALE not in chain:
        chain.append(DEFAULT_LOCALE)
    return chain


@dataclass(frozen=True)
class StoredTemplate:
    name: str
    channel: Channel
    locale: str
    version: int
    source: TemplateSource


class TemplateLookup(Protocol):
    async def find(self, channel: Channel, name: str, chain: Sequence[str]) -> StoredTemplate | None: ...


class FileTemplates:
    """The package's files as a lookup (locale `en`, version 1): the seed's view, and the lookup
    of tests without a database."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer

    async def find(self, channel: Channel, name: str, chain: Sequence[str]) -> StoredTemplate | None:
        if not self.renderer.has(channel, name):
            return None
        return StoredTemplate(name, channel, DEFAULT_LOCALE, 1, self.renderer.source(channel, name))


def _stored(row: dict[str, Any]) -> StoredTemplate:
    return StoredTemplate(
        row["name"],
        row["channel"],
        row["locale"],
        row["version"],
        TemplateSource(row["subject"], row["body"], row["html"]),
    )


class VersionNotFoundError(LookupError):
    pass


class TemplateStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def seed(self, renderer: Renderer) -> int:
        """Version 1, locale `en`, of each file template without any row; returns how many."""
        seeded = 0
        async with self.db.connection() as conn:
            for channel, name in renderer.files():
                source = renderer.source(channel, name)
                cursor = await conn.execute(
                    """
                    INSERT INTO templates (name, channel, locale, version, subject, body, html, active, created_by)
                    SELECT %s, %s, %s, 1, %s, %s, %s, true, %s
                    WHERE NOT EXISTS (SELECT 1 FROM templates WHERE name = %s AND channel = %s AND locale = %s)
                    ON CONFLICT DO NOTHING
                    RETURNING version
                    """,
                    [name, channel, DEFAULT_LOCALE, source.subject, source.body, source.html, SEED_ACTOR,
                     name, channel, DEFAULT_LOCALE],
                )  # fmt: skip
                if await cursor.fetchone():
                    await _audit(
                        conn,
                        SEED_ACTOR,
                        "seed",
                        name=name,
                        channel=channel,
                        locale=DEFAULT_LOCALE,
                        version=1,
                        previous=None,
                    )
                    seeded += 1
        return seeded

    async def find(self, channel: Channel, name: str, chain: Sequence[str]) -> StoredTemplate | None:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT * FROM templates WHERE channel = %s AND name = %s AND active AND locale = ANY(%s)
                ORDER BY array_position(%s, locale) LIMIT 1
                """,
                [channel, name, list(chain), list(chain)],
            )
            row = await cursor.fetchone()
        return _stored(row) if row else None

    async def version(self, channel: Channel, name: str, locale: str, version: int) -> StoredTemplate | None:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "SELECT * FROM templates WHERE channel = %s AND name = %s AND locale = %s AND version = %s",
                [channel, name, locale, version],
            )
            row = await cursor.fetchone()
        return _stored(row) if row else None

    async def summaries(self) -> list[dict[str, Any]]:
        """One line per (name, channel, locale): its active and latest versions."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT name, channel, locale, max(version) AS latest_version,
                       max(version) FILTER (WHERE active) AS active_version, max(created_at) AS updated_at
                FROM templates GROUP BY name, channel, locale ORDER BY name, channel, locale
                """
            )
            return list(await cursor.fetchall())

    async def versions(self, channel: Channel, name: str, locale: str) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT name, channel, locale, version, subject, body, html, active, created_by, created_at
                FROM templates WHERE channel = %s AND name = %s AND locale = %s ORDER BY version
                """,
                [channel, name, locale],
            )
            return list(await cursor.fetchall())

    async def create(
        self, channel: Channel, name: str, locale: str, source: TemplateSource, *, actor: str, activate: bool
    ) -> int:
        """A new version (the next number, taken under the template's lock); returns it."""
        key = {"name": name, "channel": channel, "locale": locale}
        async with self.db.connection() as conn:
            await _lock(conn, channel, name, locale)
            cursor = await conn.execute(
                """
                SELECT coalesce(max(version), 0) + 1 AS next, max(version) FILTER (WHERE active) AS active
                FROM templates WHERE channel = %s AND name = %s AND locale = %s
                """,
                [channel, name, locale],
            )
            row = await cursor.fetchone()
            assert row is not None
            version: int = row["next"]
            if activate:
                await _deactivate(conn, channel, name, locale)
            await conn.execute(
                """
                INSERT INTO templates (name, channel, locale, version, subject, body, html, active, created_by)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                """,
                [name, channel, locale, version, source.subject, source.body, source.html, activate, actor],
            )
            for action in ("create", "activate") if activate else ("create",):
                await _audit(conn, actor, action, **key, version=version, previous=row["active"])
        return version

    async def activate(self, channel: Channel, name: str, locale: str, version: int, *, actor: str) -> int | None:
        """Make `version` the active one (a rollback when it is older); returns the one it replaced."""
        async with self.db.connection() as conn:
            await _lock(conn, channel, name, locale)
            cursor = await conn.execute(
                "SELECT version, active FROM templates WHERE channel = %s AND name = %s AND locale = %s",
                [channel, name, locale],
            )
            rows = await cursor.fetchall()
            if version not in {r["version"] for r in rows}:
                raise VersionNotFoundError(f"{channel}/{name}/{locale} has no version {version}")
            previous: int | None = next((r["version"] for r in rows if r["active"]), None)
            if previous == version:
                return previous
            # Two statements: the unique index of the active version is checked row by row.
            await _deactivate(conn, channel, name, locale)
            await conn.execute(
                "UPDATE templates SET active = true WHERE channel = %s AND name = %s AND locale = %s AND version = %s",
                [channel, name, locale, version],
            )
            await _audit(
                conn, actor, "activate", name=name, channel=channel, locale=locale, version=version, previous=previous
            )
        return previous

    async def audit(self, *, limit: int, offset: int) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT id, at, actor, action, name, channel, locale, version, previous_version
                FROM template_audit ORDER BY id DESC LIMIT %s OFFSET %s
                """,
                [limit, offset],
            )
            return list(await cursor.fetchall())


async def _lock(conn: Any, channel: str, name: str, locale: str) -> None:
    """Serialise the changes of one (channel, name, locale) until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"keelson.templates:{channel}:{name}:{locale}"])


async def _deactivate(conn: Any, channel: str, name: str, locale: str) -> None:
    await conn.execute(
        "UPDATE templates SET active = false WHERE channel = %s AND name = %s AND locale = %s AND active",
        [channel, name, locale],
    )


async def _audit(
    conn: Any, actor: str, action: str, *, name: str, channel: str, locale: str, version: int, previous: int | None
) -> None:
    await conn.execute(
        """
        INSERT INTO template_audit (actor, action, name, channel, locale, version, previous_version)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        """,
        [actor, action, name, channel, locale, version, previous],
    )
