"""Templates per channel (jinja2), in `templates/<channel>/`:

- email: `<name>.subject.txt`, `<name>.txt` (plain text) and optionally `<name>.html`
  (autoescaped: a user's name is text, never markup);
- sms: `<name>.txt`, cut to one 160-character message;
- push: `<name>.title.txt` and `<name>.txt`.

Templates see `data` (the event's data), `recipient` (user_id, email, name, phone), `event`
(id, type) and `platform`; filters `money(cents, currency)` and `short` (an id's first 8
characters). Undefined variables are errors, so a template that does not fit its event fails
loudly instead of sending "Hello ,".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jinja2

Channel = Literal["email", "sms", "push"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "push")
SMS_LENGTH = 160


class TemplateMissingError(LookupError):
    pass


@dataclass(frozen=True)
class Rendered:
    channel: Channel
    template: str
    subject: str | None  # email subject, push title; None for SMS
    body: str
    html: str | None = None


def money(cents: Any, currency: Any) -> str:
    value = int(cents)
    sign = "-" if value < 0 else ""
    whole, part = divmod(abs(value), 100)
    return f"{sign}{whole:,}.{part:02d} {currency}"


def short(value: Any) -> str:
    return str(value)[:8]


class Renderer:
    def __init__(self, loader: jinja2.BaseLoader | None = None) -> None:
        self.env = jinja2.Environment(
            loader=loader or jinja2.PackageLoader("keelson_services.services.notifications", "templates"),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
            trim_blocks=True,
        )
        self.env.filters["money"] = money
        self.env.filters["short"] = short

    def has(self, channel: Channel, template: str) -> bool:
        return self._exists(f"{channel}/{template}.txt")

    def render(self, channel: Channel, template: str, context: Mapping[str, Any]) -> Rendered:
        if not self.has(channel, template):
            raise TemplateMissingError(f"no {channel} template {template!r}")
        body = self._render(f"{channel}/{template}.txt", context)
        if channel == "email":
            html_name = f"email/{template}.html"
            return Rendered(
                channel,
                template,
                self._render(f"email/{template}.subject.txt", context).strip(),
                body,
                self._render(html_name, context) if self._exists(html_name) else None,
            )
        if channel == "push":
            return Rendered(channel, template, self._render(f"push/{template}.title.txt", context).strip(), body)
        text = " ".join(body.split())
        return Rendered(channel, template, None, text if len(text) <= SMS_LENGTH else text[: SMS_LENGTH - 1] + "…")

    def _render(self, name: str, context: Mapping[str, Any]) -> str:
        return self.env.get_template(name).render(context)

    def _exists(self, name: str) -> bool:
        try:
            self.env.get_template(name)
        except jinja2.TemplateNotFound:
            return False
        return True
