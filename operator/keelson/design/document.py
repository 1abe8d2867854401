"""The architecture document, rendered from the facts with a jinja2 template (`templates/`)."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined

from keelson.design.blueprint import Blueprint
from keelson.design.facts import DesignFacts
from keelson.design.platform import placeholder_image
from keelson.sizing import PEAK_TO_AVERAGE, REQUESTS_PER_USER_PER_DAY


def _cell(text: object) -> str:
    """Table cells stay one cell: a pipe or a line break in prose would split or end the row."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _seconds(values: tuple[int, ...] | list[int]) -> str:
    return ", ".join(f"{v} s" for v in values)


def _number(value: float) -> str:
    return f"{value:,.1f}" if value % 1 else f"{int(value):,}"


_ENV = Environment(
    loader=PackageLoader("keelson.design", "templates"),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,  # Markdown, not HTML: escaping is per table cell (`cell`)
)
_ENV.filters.update(cell=_cell, seconds=_seconds, number=_number)


def render_document(blueprint: Blueprint, facts: DesignFacts, *, name: str, diagram: str) -> str:
    callers = {s.name: s.effective.callers for s in facts.services}
    return _ENV.get_template("design.md.j2").render(
        bp=blueprint,
        f=facts,
        name=name,
        diagram=diagram,
        callers=callers,
        requests_per_user=REQUESTS_PER_USER_PER_DAY,
        peak_to_average=PEAK_TO_AVERAGE,
        placeholders=[(s.name, placeholder_image(blueprint, s.name)) for s in facts.services if s.effective.image],
        stateless=[s for s in facts.services if s.blueprint.stateless],
    )
