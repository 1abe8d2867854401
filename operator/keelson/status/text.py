"""`keelson status` as text: aligned columns, coloured on a terminal, plain when piped. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from keelson.status.view import PlatformView, SummaryRow

_COLOURS = {"True": "32", "False": "31", "Unknown": "33"}  # green, red, yellow


class Style:
    def __init__(self, *, colour: bool) -> None:
        self.colour = colour

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text

    def state(self, status: str, text: str | None = None) -> str:
        return self._wrap(_COLOURS.get(status, "33"), text if text is not None else status)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)


def _visible(text: str) -> int:
    """The width of `text` on screen, escape sequences not counted."""
    width, escape = 0, False
    for ch in text:
        if ch == "\x1b":
            escape = True
        elif escape:
            escape = ch != "m"
        else:
            width += 1
    return width


def columns(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(_visible(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(c + " " * (w - _visible(c)) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def age(timestamp: str, now: datetime) -> str:
    """`5s`, `3m`, `2h`, `4d` since an RFC 3339 time, as kubectl shows it."""
    if not timestamp:
        return "-"
    seconds = int((now - datetime.fromisoformat(timestamp.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _bool(value: bool | None, style: Style, yes: str = "yes", no: str = "no") -> str:
    if value is None:
        return style.state("Unknown", "unknown")
    return style.state("True", yes) if value else style.state("False", no)


def format_platform(view: PlatformView, *, now: datetime, style: Style) -> str:
    out = [
        f"{style.bold(view.name)} in {view.namespace}: Ready {style.state(view.ready)} ({view.ready_reason})"
        + (f", {view.daily_users:,} daily users" if view.daily_users else "")
    ]
    if not view.reported:
        out.append(
            style.state(
                "Unknown",
                f"The operator has not reported on generation {view.generation} yet"
                + (f" (last: {view.observed_generation})" if view.observed_generation else "")
                + ": is it running? (kubectl -n keelson-system get pods; locally: keelson dev status)",
            )
        )
    out += ["", style.bold("Services")]
    rows = [["NAME", "READY", "HPA", "AVAILABLE"]]
    for s in view.services:
        hpa = f"{s.hpa_min}-{s.hpa_max}" if s.hpa_max is not None else "off"
        rows.append([s.name, f"{s.ready}/{s.desired}", hpa, _bool(s.available, style)])
    out += columns(rows)
    if view.topics:
        out += ["", style.bold("Topics")]
        rows = [["TOPIC", "PARTITIONS", "EXISTS", "DLQ (consumer)", "DLQ EXISTS", "DEPTH"]]
        for t in view.topics:
            first = [t.name, str(t.partitions or "-"), _bool(t.exists, style)]
            if not t.dlqs:
                rows.append([*first, "-", "", ""])
            for i, d in enumerate(t.dlqs):
                depth = "-" if d.depth is None else str(d.depth)
                if d.depth:
                    depth = style.state("False", depth)
                rows.append(
                    [*(first if i == 0 else ["", "", ""]), f"{d.dlq} ({d.consumer})", _bool(d.exists, style), depth]
                )
        out += columns(rows)
        if view.dlq_depth_source:
            out.append(style.dim(f"  DLQ depth: {view.dlq_depth_source}"))
    if view.databases:
        out += ["", style.bold("Databases")]
        rows = [["SERVICE", "PROVIDER", "DATABASE", "READY", "MESSAGE"]]
        rows += [
            [d.service, d.provider, d.database or "-", _bool(d.ready, style), d.message or ""] for d in view.databases
        ]
        out += columns(rows)
    if view.attached:
        out += ["", style.bold("Attached services (PlatformServices)")]
        rows = [["PLATFORMSERVICE", "SERVICE", "ACCEPTED", "REASON"]]
        rows += [
            [f"{a.namespace}/{a.name}", a.service or "-", _bool(a.accepted, style), a.reason] for a in view.attached
        ]
        out += columns(rows)
    out += ["", style.bold("Conditions")]
    if view.conditions:
        rows = [["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"]]
        rows += [[c.type, style.state(c.status), c.reason, age(c.since, now), c.message] for c in view.conditions]
        out += columns(rows)
    else:
        out.append("  none yet")
    out += ["", style.bold("Events")]
    if view.events:
        rows = [["AGE", "TYPE", "REASON", "MESSAGE"]]
        rows += [
            [age(e.time, now), style.state("True" if e.type == "Normal" else "False", e.type), e.reason, e.message]
            for e in view.events
        ]
        out += columns(rows)
    else:
        out.append("  none")
    return "\n".join(out) + "\n"


def format_summary(rows: Sequence[SummaryRow], *, style: Style) -> str:
    if not rows:
        return "No MicroservicePlatforms found.\n"
    table = [["NAMESPACE", "NAME", "READY", "REASON", "SERVICES", "DAILY USERS"]]
    table += [
        [
            r.namespace,
            r.name,
            style.state(r.ready),
            r.reason,
            r.services,
            f"{r.daily_users:,}" if r.daily_users else "-",
        ]
        for r in rows
    ]
    return "\n".join(columns(table, indent="")) + "\n"
