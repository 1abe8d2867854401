"""The design as a picture: services, their calls, topics and databases.

Mermaid for the Markdown (GitHub and most viewers draw it) and Graphviz DOT for an SVG when `dot`
is installed. Node ids are derived from names, so the two pictures and the tables agree.
"""

from __future__ import annotations

from keelson.design.facts import DesignFacts


def _id(prefix: str, name: str) -> str:
    return prefix + "_" + name.replace("-", "_").replace(".", "__")


def mermaid(facts: DesignFacts) -> str:
    lines = ["flowchart LR"]
    lines += [f'  {_id("svc", s.name)}["{s.name}"]' for s in facts.services]
    lines += [f'  {_id("db", d.service)}[("{d.service} db")]' for d in facts.databases]
    lines += [f'  {_id("topic", t.name)}>"{t.name}"]' for t in facts.topics]
    lines += [f"  {_id('svc', c.caller)} -->|HTTP| {_id('svc', c.callee)}" for c in facts.calls]
    lines += [f"  {_id('svc', d.service)} --- {_id('db', d.service)}" for d in facts.databases]
    for t in facts.topics:
        lines += [f"  {_id('svc', p)} -.->|publishes| {_id('topic', t.name)}" for p in t.publishers]
        lines += [f"  {_id('topic', t.name)} -.->|consumed by| {_id('svc', c)}" for c in t.subscribers]
    return "\n".join(lines) + "\n"


def dot(facts: DesignFacts, *, title: str) -> str:
    lines = [
        "digraph design {",
        f'  label="{title}"; rankdir=LR; fontname="Helvetica";',
        '  node [fontname="Helvetica"]; edge [fontname="Helvetica", fontsize=10];',
    ]
    lines += [f'  {_id("svc", s.name)} [label="{s.name}", shape=box, style=rounded];' for s in facts.services]
    lines += [f'  {_id("db", d.service)} [label="{d.service} db", shape=cylinder];' for d in facts.databases]
    lines += [f'  {_id("topic", t.name)} [label="{t.name}", shape=cds];' for t in facts.topics]
    lines += [f'  {_id("svc", c.caller)} -> {_id("svc", c.callee)} [label="HTTP"];' for c in facts.calls]
    lines += [f"  {_id('svc', d.service)} -> {_id('db', d.service)} [dir=none];" for d in facts.databases]
    for t in facts.topics:
        lines += [f"  {_id('svc', p)} -> {_id('topic', t.name)} [style=dashed];" for p in t.publishers]
        lines += [f"  {_id('topic', t.name)} -> {_id('svc', c)} [style=dashed];" for c in t.subscribers]
    return "\n".join([*lines, "}"]) + "\n"
