"""Templates per channel (jinja2). Each template is a `TemplateSource` of up to three parts:

- email: `subject`, `body` (plain text) and optionally `html` (autoescaped: a user's name is
  text, never markup);
- sms: `body`, cut to one 160-character message;
- push: `subject` (the title) and `body`.

The files in `templates/<channel>/` (`<name>.subject.txt` or `<name>.title.txt`, `<name>.txt`,
`<name>.html`) are the defaults: the database seeds version 1, locale `en`, of each from them
at start-up (`template_store.py`), and the admin API adds versions and locales after that.

Templates see `data` (the event's data), `recipient` (user_id, email, name, phone, locale),
`event` (id, type) and `platform`; filters `money(cents, currency)` and `short` (an id's first 8
characters). They run in jinja2's immutable sandbox, since admins write them through an API: no
attribute of Python's internals, no mutation of what they are given. Undefined variables are
errors, so a template that does not fit its event fails loudly instead of sending "Hello ,".
Subjects and titles are one line whatever the data holds: a name with a line break cannot add
a header.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

Channel = Literal["email", "sms", "push"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "push")
SMS_LENGTH = 160
# The file that holds each channel's subject part, if it has one.
_SUBJECT_FILE: dict[Channel, str | None] = {"email": "subject.txt", "push": "title.txt", "sms": None}


class TemplateMissingError(LookupError):
    pass


class TemplateInvalidError(ValueError):
    """A template source that does not parse, or lacks a part its channel needs."""


@dataclass(frozen=True)
class TemplateSource:
    subject: str | None  # email subject, push title; None for SMS
    body: str
    html: str | None = None


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


def header_text(value: str) -> str:
    """`value` as one header line: every run of control characters or line breaks (which the
    mail library refuses in a header, and which would inject headers where it did not) becomes
    one space."""
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


def _environment(*, html: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        autoescape=html, undefined=jinja2.StrictUndefined, keep_trailing_newline=False, trim_blocks=True
    )
    env.filters["money"] = money
    env.filters["short"] = short
    return env


class Renderer:
    """Renders sources; reads the default sources from the package's files (or `loader`)."""

    def __init__(self, loader: jinja2.BaseLoader | None = None) -> None:
        self.loader = loader or jinja2.PackageLoader("keelson_services.services.notifications", "templates")
        self.text = _environment(html=False)
        self.html = _environment(html=True)

    def files(self) -> Iterator[tuple[Channel, str]]:
        """Every (channel, name) the files define."""
        for path in sorted(self.loader.list_templates()):
            channel, _, file = path.partition("/")
            name, dot, rest = file.partition(".")
            if channel in CHANNELS and dot and rest == "txt":
                yield channel, name

    def has(self, channel: Channel, template: str) -> bool:
        return self._file(f"{channel}/{template}.txt") is not None

    def source(self, channel: Channel, template: str) -> TemplateSource:
        """The default source of (channel, template) from the files."""
        body = self._file(f"{channel}/{template}.txt")
        if body is None:
            raise TemplateMissingError(f"no {channel} template {template!r}")
        subject_file = _SUBJECT_FILE[channel]
        subject = self._file(f"{channel}/{template}.{subject_file}") if subject_file else None
        html = self._file(f"email/{template}.html") if channel == "email" else None
        return TemplateSource(subject, body, html)

    def render(self, channel: Channel, template: str, context: Mapping[str, Any]) -> Rendered:
        """Render the file default of (channel, template)."""
        return self.render_source(channel, template, self.source(channel, template), context)

    def validate(self, channel: Channel, source: TemplateSource) -> None:
        """Refuse a source whose parts do not parse or do not fit the channel."""
        if not source.body.strip():
            raise TemplateInvalidError("body: must not be empty")
        if channel in ("email", "push") and not (source.subject or "").strip():
            raise TemplateInvalidError(f"subject: a {channel} template needs one")
        if channel != "email" and source.html is not None:
            raise TemplateInvalidError(f"html: only email templates have one, not {channel}")
        if channel == "sms" and source.subject is not None:
            raise TemplateInvalidError("subject: SMS templates have none")
        for part, text, env in (
            ("subject", source.subject, self.text),
            ("body", source.body, self.text),
            ("html", source.html, self.html),
        ):
            if text is None:
                continue
            try:
                env.parse(text)
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateInvalidError(f"{part}: line {exc.lineno}: {exc.message}") from exc

    def render_source(
        self, channel: Channel, template: str, source: TemplateSource, context: Mapping[str, Any]
    ) -> Rendered:
        body = self.text.from_string(source.body).render(context)
        subject = header_text(self.text.from_string(source.subject).render(context)) if source.subject else None
        if channel == "email":
            html = self.html.from_string(source.html).render(context) if source.html is not None else None
            return Rendered(channel, template, subject or "", body, html)
        if channel == "push":
            return Rendered(channel, template, subject or "", body)
        text = " ".join(body.split())
        return Rendered(channel, template, None, text if len(text) <= SMS_LENGTH else text[: SMS_LENGTH - 1] + "…")

    def _file(self, name: str) -> str | None:
        try:
            text, _, _ = self.loader.get_source(self.text, name)
        except jinja2.TemplateNotFound:
            return None
        return text
