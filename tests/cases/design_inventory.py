"""What a design declares, read two ways: from its platform.yaml and from its design.md.

The document is parsed as Markdown (markdown-it), not searched with patterns: its tables are the
inventory, recognised by their header rows, and names are the code spans in their cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.effective import effective_services
from keelson.topics import plan_topics, subscriptions


@dataclass
class Inventory:
    services: set[str] = field(default_factory=set)
    databases: set[str] = field(default_factory=set)
    calls: set[tuple[str, str]] = field(default_factory=set)
    topics: set[str] = field(default_factory=set)
    subscriptions: set[tuple[str, str]] = field(default_factory=set)
    retry_topics: set[str] = field(default_factory=set)
    dlqs: set[str] = field(default_factory=set)


def of_platform(text: str) -> Inventory:
    spec = MicroservicePlatform.from_object(yaml.safe_load(text)).spec
    planned = plan_topics(spec)
    return Inventory(
        services={s.name for s in spec.services},
        databases={s.name for s in spec.services if s.database},
        calls={(s.name, c) for s in effective_services(spec) for c in s.calls},
        topics={t.name for t in planned if t.role in ("main", "external")},
        subscriptions={(s.topic, s.service) for s in subscriptions(spec)},
        retry_topics={t.name for t in planned if t.role == "retry"},
        dlqs={t.name for t in planned if t.role == "dlq"},
    )


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Token, ...], ...]  # each cell's inline token

    def codes(self, column: int) -> list[list[str]]:
        """The code spans of a column, per row."""
        return [[c.content for c in row[column].children or () if c.type == "code_inline"] for row in self.rows]

    def names(self, column: int) -> list[str]:
        """A column whose every cell is one name in a code span."""
        cells = self.codes(column)
        assert all(len(c) == 1 for c in cells), f"{self.header[column]}: a cell is not exactly one name: {cells}"
        return [c[0] for c in cells]


def tables(markdown: str) -> list[Table]:
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    found: list[Table] = []
    header: list[str] = []
    rows: list[tuple[Token, ...]] = []
    row: list[Token] = []
    in_head = False
    for i, tok in enumerate(tokens):
        if tok.type == "thead_open":
            in_head, header, rows = True, [], []
        elif tok.type == "thead_close":
            in_head = False
        elif tok.type in ("th_open", "td_open"):
            inline = tokens[i + 1]
            if in_head:
                header.append(inline.content)
            else:
                row.append(inline)
        elif tok.type == "tr_close" and not in_head:
            rows.append(tuple(row))
            row = []
        elif tok.type == "table_close":
            found.append(Table(tuple(header), tuple(rows)))
    return found


def table(markdown: str, *header: str) -> Table | None:
    """The table whose header starts with these columns (at most one may)."""
    matching = [t for t in tables(markdown) if t.header[: len(header)] == header]
    assert len(matching) <= 1, f"{len(matching)} tables start with {header}"
    return matching[0] if matching else None


def _rows(markdown: str, *header: str) -> Table:
    return table(markdown, *header) or Table(header, ())


def of_document(markdown: str) -> Inventory:
    services = _rows(markdown, "service", "kind")
    databases = _rows(markdown, "database of")
    calls = _rows(markdown, "caller", "callee")
    topics = _rows(markdown, "topic", "published by")
    subs = _rows(markdown, "topic", "consumer")
    return Inventory(
        services=set(services.names(0)),
        databases=set(databases.names(0)),
        calls=set(zip(calls.names(0), calls.names(1), strict=True)),
        topics=set(topics.names(0)),
        subscriptions=set(zip(subs.names(0), subs.names(1), strict=True)),
        retry_topics={name for cell in subs.codes(3) for name in cell},
        dlqs=set(subs.names(4)),
    )


def mermaid_blocks(markdown: str) -> list[str]:
    return [t.content for t in MarkdownIt("commonmark").parse(markdown) if t.type == "fence" and t.info == "mermaid"]
