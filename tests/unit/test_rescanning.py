"""kopf's CRD race, reproduced with kopf's own observer, and the rescan that repairs it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any

import kopf
import pytest
from kopf._cogs.structs import references
from kopf._core.reactor import observation

import keelson.controller.handlers  # noqa: F401  (registers the handlers kopf serves)
from keelson.controller.rescanning import rescan, unwatched
from keelson.kube.resources import CHILD_KINDS, Kind

MONITORING = [k for k in CHILD_KINDS if k.group == "monitoring.coreos.com"]
VERBS = frozenset({"get", "list", "watch", "patch", "create", "delete", "update"})


def _resource(kind: Kind) -> references.Resource:
    return references.Resource(
        kind.group, kind.version, kind.plural, kind=kind.kind, namespaced=True, verbs=VERBS, preferred=True
    )


def _crd_event(kind: Kind) -> Any:
    return {"type": "ADDED", "object": {"spec": {"group": kind.group}, "metadata": {"name": kind.plural}}}


async def test_kopf_drops_a_kind_when_two_crds_of_a_group_arrive_and_the_rescan_restores_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = kopf.get_default_registry()
    settings = kopf.OperatorSettings()
    insights = references.Insights()
    monitor, rule = MONITORING
    served: set[references.Resource] = set()
    first_listed = asyncio.Event()

    async def discovery(*, groups: Collection[str], **_: Any) -> Collection[references.Resource]:
        """The API server's discovery of the group, at the moment of the request; the rescan
        woken by the first CRD lists early and answers late (a slow response, a busy loop)."""
        listed = {r for r in served if r.group in groups}
        if not first_listed.is_set():
            first_listed.set()
            await asyncio.sleep(0.2)
        return listed

    monkeypatch.setattr(observation.scanning, "scan_resources", discovery)
    served.add(_resource(monitor))  # the first CRD is established ...
    first = asyncio.create_task(
        observation.process_discovered_resource_event(
            raw_event=_crd_event(monitor), settings=settings, registry=registry, insights=insights
        )
    )
    await first_listed.wait()
    served.add(_resource(rule))  # ... the second one too, while the first rescan is in flight
    await observation.process_discovered_resource_event(
        raw_event=_crd_event(rule), settings=settings, registry=registry, insights=insights
    )
    assert {k.kind for k in unwatched(insights, MONITORING)} == set()  # the second rescan saw both
    await first  # the stale rescan lands last
    assert [k.kind for k in unwatched(insights, MONITORING)] == ["PrometheusRule"]  # kopf's race

    restored = await rescan(insights=insights, registry=registry, settings=settings, kinds=CHILD_KINDS, scan=discovery)
    assert [k.kind for k in restored] == ["PrometheusRule"]
    assert unwatched(insights, MONITORING) == []
    assert {r.plural for r in insights.watched_resources} >= {"servicemonitors", "prometheusrules"}


async def test_a_kind_whose_crd_is_not_installed_is_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    registry = kopf.get_default_registry()
    insights = references.Insights()
    calls: list[Collection[str]] = []

    async def discovery(*, groups: Collection[str], **_: Any) -> Collection[references.Resource]:
        calls.append(groups)
        return set()

    with caplog.at_level(logging.WARNING):
        restored = await rescan(
            insights=insights, registry=registry, settings=kopf.OperatorSettings(), kinds=MONITORING, scan=discovery
        )
    assert restored == [] and calls == [{"monitoring.coreos.com"}]
    assert insights.watched_resources == set() and not caplog.records


async def test_nothing_is_sent_once_every_kind_is_watched() -> None:
    insights = references.Insights()
    for kind in MONITORING:
        insights.watched_resources.add(_resource(kind))
        insights.indexed_resources.add(_resource(kind))

    async def discovery(**_: Any) -> Collection[references.Resource]:
        raise AssertionError("no discovery request expected")

    assert (
        await rescan(
            insights=insights, registry=kopf.get_default_registry(), settings=None, kinds=MONITORING, scan=discovery
        )
        == []
    )
