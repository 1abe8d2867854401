"""`keelson status`: the view of a platform from its object, children and Events, and its text."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from keelson.cli import main
from keelson.status.text import Style, age, format_platform, format_summary
from keelson.status.view import MAX_EVENTS, platform_view, summary_row
from tests.cases.invalid_platforms import example

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _platform(status: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    doc = example()
    doc["metadata"].update(namespace="shop-ns", generation=generation)
    if status is not None:
        doc["status"] = status
    return doc


def _deployment(name: str, replicas: int, ready: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"replicas": replicas}, "status": {"readyReplicas": ready}}


def _hpa(name: str, low: int, high: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"minReplicas": low, "maxReplicas": high}}


def _event(name: str, reason: str, at: str, type_: str = "Normal") -> dict[str, Any]:
    return {"metadata": {"name": name}, "type": type_, "reason": reason, "message": reason.lower(), "lastTimestamp": at}


STATUS = {
    "observedGeneration": 1,
    "readyServices": "4/5",
    "conditions": [
        {"type": "Ready", "status": "False", "reason": "Progressing", "message": "waiting for payments",
         "lastTransitionTime": "2026-01-01T11:59:00Z"},
        {"type": "TopicsReady", "status": "True", "reason": "TopicsReady", "message": "ok",
         "lastTransitionTime": "2026-01-01T10:00:00Z"},
    ],
    "topics": [
        {"name": "ecommerce.payment.failed", "role": "main", "partitions": 6, "replicationFactor": 3, "exists": True},
        {"name": "ecommerce.payment.failed.orders.dlq", "role": "dlq", "partitions": 6, "replicationFactor": 3,
         "exists": True, "subscription": "orders", "dlq": "ecommerce.payment.failed.orders.dlq"},
    ],
    "databases": [{"service": "orders", "provider": "postgres", "database": "shop_orders_1", "secret": "s",
                   "ready": False, "message": "server unreachable"}],
}  # fmt: skip


def test_services_show_replicas_and_hpa_bounds() -> None:
    view = platform_view(
        _platform(STATUS),
        deployments=[_deployment("gateway", 3, 3), _deployment("payments", 2, 1)],
        hpas=[_hpa("gateway", 3, 7)],
        events=[],
    )
    rows = {s.name: s for s in view.services}
    assert (rows["gateway"].ready, rows["gateway"].desired, rows["gateway"].hpa_min, rows["gateway"].hpa_max) == (
        3, 3, 3, 7,
    )  # fmt: skip
    assert rows["gateway"].available and not rows["payments"].available
    assert rows["users"].desired == 0 and rows["users"].hpa_max is None and not rows["users"].available
    assert (view.ready, view.ready_reason, view.reported) == ("False", "Progressing", True)


def test_topics_carry_their_subscriptions_dlqs_from_the_spec() -> None:
    view = platform_view(
        _platform(STATUS), deployments=[], hpas=[], events=[], dlq_depths={"ecommerce.payment.failed.orders.dlq": 4}
    )
    [topic] = view.topics
    assert topic.name == "ecommerce.payment.failed"
    dlqs = {d.consumer: d for d in topic.dlqs}
    # notifications subscribes too, but the status lists only orders' DLQ: the other is unknown, not absent.
    assert set(dlqs) == {"orders", "notifications"}
    assert (dlqs["orders"].exists, dlqs["orders"].depth) == (True, 4)
    assert (dlqs["notifications"].exists, dlqs["notifications"].depth) == (None, None)


def test_a_platform_the_operator_has_not_reported_on_says_so() -> None:
    text = format_platform(
        platform_view(_platform(), deployments=[], hpas=[], events=[]), now=NOW, style=Style(colour=False)
    )
    assert "Ready Unknown (NotReported)" in text
    assert "The operator has not reported on generation 1 yet: is it running?" in text
    stale = platform_view(_platform(STATUS, generation=2), deployments=[], hpas=[], events=[])
    assert not stale.reported
    assert "generation 2 yet (last: 1)" in format_platform(stale, now=NOW, style=Style(colour=False))


def test_recent_events_in_order() -> None:
    events = [_event(f"e{i:02d}", f"R{i:02d}", f"2026-01-01T11:{i:02d}:00Z") for i in range(MAX_EVENTS + 3)]
    view = platform_view(_platform(STATUS), deployments=[], hpas=[], events=list(reversed(events)))
    assert [e.reason for e in view.events] == [f"R{i:02d}" for i in range(3, MAX_EVENTS + 3)]


def test_plain_text_has_no_escapes_and_colour_has() -> None:
    view = platform_view(
        _platform(STATUS),
        deployments=[_deployment("gateway", 3, 3)],
        hpas=[_hpa("gateway", 3, 7)],
        events=[_event("a", "Progressing", "2026-01-01T11:58:00Z", "Warning")],
    )
    plain = format_platform(view, now=NOW, style=Style(colour=False))
    assert "\x1b" not in plain
    lines = plain.splitlines()
    assert lines[0] == "shop in shop-ns: Ready False (Progressing), 1,000,000 daily users"
    assert "  gateway        3/3    3-7  yes" in lines
    assert "  Ready        False   Progressing  1m     waiting for payments" in lines
    assert any(line == "  orders   postgres  shop_orders_1  no     server unreachable" for line in lines)
    coloured = format_platform(view, now=NOW, style=Style(colour=True))
    assert "\x1b[31mFalse\x1b[0m" in coloured
    # Colour does not shift the columns: stripped of escapes, it is the plain text.
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_ages_read_like_kubectls() -> None:
    assert [age(t, NOW) for t in ("2026-01-01T11:59:55Z", "2026-01-01T11:00:00Z", "2025-12-30T12:00:00Z", "")] == [
        "5s", "1h", "2d", "-",
    ]  # fmt: skip


def test_summary_of_all_platforms() -> None:
    rows = [summary_row(_platform(STATUS)), summary_row(_platform())]
    text = format_summary(rows, style=Style(colour=False))
    assert text.splitlines() == [
        "NAMESPACE  NAME  READY    REASON       SERVICES  DAILY USERS",
        "shop-ns    shop  False    Progressing  4/5       1,000,000",
        "shop-ns    shop  Unknown  NotReported  -         1,000,000",
    ]
    assert format_summary([], style=Style(colour=False)) == "No MicroservicePlatforms found.\n"


def test_cli_without_a_cluster_says_what_is_missing(monkeypatch: Any, tmp_path: Any, capsys: Any) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["status", "shop"]) == 1
    assert "no kubeconfig" in capsys.readouterr().err


def test_attached_services_are_listed_with_their_verdict() -> None:
    status = {
        **STATUS,
        "attached": [
            {"namespace": "team-a", "name": "search", "uid": "u1", "service": "search", "accepted": True,
             "reason": "Attached"},
            {"namespace": "team-b", "name": "reviews", "uid": "u2", "service": "reviews", "accepted": False,
             "reason": "NamespaceNotAllowed"},
        ],
    }  # fmt: skip
    view = platform_view(_platform(status), deployments=[], hpas=[], events=[])
    assert [(a.namespace, a.name, a.accepted, a.reason) for a in view.attached] == [
        ("team-a", "search", True, "Attached"),
        ("team-b", "reviews", False, "NamespaceNotAllowed"),
    ]
    text = format_platform(view, now=NOW, style=Style(colour=False))
    assert "Attached services (PlatformServices)" in text
    assert re.search(r"team-b/reviews\s+reviews\s+no\s+NamespaceNotAllowed", text)
    plain = format_platform(
        platform_view(_platform(STATUS), deployments=[], hpas=[], events=[]), now=NOW, style=Style(colour=False)
    )
    assert "Attached services" not in plain
