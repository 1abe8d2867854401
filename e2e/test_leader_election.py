"""Two operator processes, one leader: fail-over after a crash, hand-over on SIGTERM, and, from
the API server's audit log, never two writers and a silent standby.

Both processes run the working tree's operator as the chart's ServiceAccount, with the chart's
Lease Role (templates/leader-election.yaml), and short lease timings so that a crash is noticed
in seconds. Each one's user agent carries its identity, which is how the audit log tells them
apart. The stack's usual single operator is stopped for the module and started again after it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from e2e.kube import OPERATOR_USER, Kube, eventually, operator_writes, utcnow
from keelson.devstack.stack import OPERATOR, STANDBY_OPERATOR, LocalStack
from tests.cases.invalid_platforms import workloads_example

pytestmark = pytest.mark.cluster

LEASE_SECONDS = 6
ELECTION_ENV = {
    "KEELSON_LEADER_ELECTION": "true",
    "KEELSON_LEASE_DURATION_SECONDS": str(LEASE_SECONDS),
    "KEELSON_LEASE_RENEW_DEADLINE_SECONDS": "4",
    "KEELSON_LEASE_RETRY_PERIOD_SECONDS": "1",
}
LEASE_NAMESPACE = "keelson-system"
USER_AGENT = re.compile(r"^keelson-operator/\S+ \((?P<identity>[^)]+)\)")


@dataclass
class Pair:
    stack: LocalStack
    kube: Kube
    since: str

    def holder(self) -> str:
        lease = self.kube.get("lease", "keelson-operator", LEASE_NAMESPACE) or {}
        return str(lease.get("spec", {}).get("holderIdentity") or "")

    def leader(self) -> str:
        """The process name of the leader (its identity is POD_NAME + "_" + a uuid)."""
        holder = eventually(self.holder, timeout=LEASE_SECONDS + 10, what="a leader")
        return holder.rsplit("_", 1)[0]

    def other(self, name: str) -> str:
        return STANDBY_OPERATOR if name == OPERATOR else OPERATOR


@pytest.fixture(scope="module")
def pair(stack: LocalStack, kube: Kube) -> Iterator[Pair]:
    saved = {k: os.environ.get(k) for k in ELECTION_ENV}
    stack.stop_operator()
    os.environ.update(ELECTION_ENV)  # the operators' environment is this process's
    try:
        since = utcnow()
        stack.start_operator(name=OPERATOR)
        stack.start_operator(name=STANDBY_OPERATOR)
        yield Pair(stack, kube, since)
    finally:
        for name in (OPERATOR, STANDBY_OPERATOR):
            stack.stop_operator(name=name)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stack.start_operator()  # the stack's usual single operator, for the other modules


def _platform(kube: Kube, namespace: str) -> dict[str, Any]:
    doc = workloads_example()
    kube.apply(namespace, doc)
    eventually(lambda: _ready(kube, namespace), timeout=90, what="Ready=True")
    return doc


def _ready(kube: Kube, namespace: str) -> bool:
    cond = kube.condition("shop", namespace)
    return bool(cond and cond["status"] == "True")


def _set_marker(kube: Kube, namespace: str, doc: dict[str, Any], value: str) -> None:
    doc["spec"]["services"][0]["env"] = [{"name": "LEADER_TEST", "value": value}]
    kube.apply(namespace, doc)


def _marker(kube: Kube, namespace: str, doc: dict[str, Any]) -> str | None:
    service = doc["spec"]["services"][0]["name"]
    deployment = kube.get("deployment", service, namespace) or {}
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    for env in containers[0].get("env", []) if containers else []:
        if env["name"] == "LEADER_TEST":
            return str(env.get("value"))
    return None


def test_a_crashed_leader_is_replaced_within_the_lease_duration(pair: Pair, namespace: str) -> None:
    doc = _platform(pair.kube, namespace)
    leader = pair.leader()
    pair.stack.kill_operator(signal.SIGKILL, name=leader)
    killed = time.monotonic()
    _set_marker(pair.kube, namespace, doc, "after-crash")
    eventually(
        lambda: _marker(pair.kube, namespace, doc) == "after-crash",
        timeout=LEASE_SECONDS + 5,
        interval=0.2,
        what="the standby to apply the change",
    )
    print(f"fail-over after SIGKILL: change applied {time.monotonic() - killed:.1f}s after the crash")
    assert pair.leader() == pair.other(leader)
    pair.stack.start_operator(name=leader)  # back, as the standby


def test_sigterm_hands_over_within_five_seconds(pair: Pair, namespace: str) -> None:
    doc = _platform(pair.kube, namespace)
    leader, before = pair.leader(), pair.holder()
    pair.stack.kill_operator(signal.SIGTERM, name=leader)
    stopped = time.monotonic()
    eventually(lambda: pair.holder() not in ("", before), timeout=5, interval=0.1, what="the standby to take the lease")
    handed_over = time.monotonic() - stopped
    _set_marker(pair.kube, namespace, doc, "after-sigterm")
    eventually(lambda: _marker(pair.kube, namespace, doc) == "after-sigterm", timeout=10, what="the change applied")
    print(f"hand-over after SIGTERM: new holder {handed_over:.1f}s after the signal")
    eventually(lambda: not pair.stack.operator_alive(name=leader), timeout=10, what=f"{leader} to exit")
    pair.stack.start_operator(name=leader)


def test_a_frozen_leader_that_wakes_after_losing_the_lease_writes_nothing_and_exits(pair: Pair, namespace: str) -> None:
    doc = _platform(pair.kube, namespace)
    leader, before = pair.leader(), pair.holder()
    pair.stack.kill_operator(signal.SIGSTOP, name=leader)  # a stalled node, a long GC pause
    try:
        eventually(
            lambda: pair.holder() not in ("", before), timeout=LEASE_SECONDS + 5, what="the standby to take over"
        )
        taken = utcnow()
        _set_marker(pair.kube, namespace, doc, "after-freeze")
        eventually(lambda: _marker(pair.kube, namespace, doc) == "after-freeze", timeout=10, what="the change")
    finally:
        pair.stack.kill_operator(signal.SIGCONT, name=leader)
    # It wakes with events queued for the change above: it must see its renew deadline passed,
    # start no pass, and end (the pod would restart as a fresh candidate).
    eventually(lambda: not pair.stack.operator_alive(name=leader), timeout=15, what=f"{leader} to exit")
    late = [w for w in _writes(pair.stack.audit_log, taken) if w.identity == before and not w.lease]
    assert not late, late
    pair.stack.start_operator(name=leader)


@dataclass(frozen=True)
class Write:
    at: str
    identity: str
    lease: bool
    obj: tuple[str, str, str]
    ok: bool


def _writes(audit_log: Path, since: str) -> list[Write]:
    writes = []
    for event in operator_writes(audit_log, since=since):
        match = USER_AGENT.match(event.get("userAgent", ""))
        assert match, f"an operator write without Keelson's user agent: {event.get('userAgent')!r}"
        ref = event.get("objectRef", {})
        writes.append(
            Write(
                at=event["requestReceivedTimestamp"],
                identity=match["identity"],
                lease=ref.get("resource") == "leases",
                obj=(ref.get("resource", ""), ref.get("namespace", ""), ref.get("name", "")),
                ok=event.get("responseStatus", {}).get("code", 500) < 300,
            )
        )
    return sorted(writes, key=lambda w: w.at)


def _terms(writes: list[Write]) -> list[tuple[str, str]]:
    """Leadership terms as (start, holder): a run of one identity's successful Lease writes (the
    acquisition, the renewals, the release) starts a term that lasts until another's begins."""
    terms: list[tuple[str, str]] = []
    for w in writes:
        if w.lease and w.ok and (not terms or terms[-1][1] != w.identity):
            terms.append((w.at, w.identity))
    return terms


def _holder_at(terms: list[tuple[str, str]], at: str) -> str | None:
    holder = None
    for start, identity in terms:
        if start > at:
            break
        holder = identity
    return holder


def test_never_two_writers_and_the_standby_writes_nothing(pair: Pair, namespace: str) -> None:
    # Runs after the fail-overs above, and adds a platform of its own, so there is something to see.
    _platform(pair.kube, namespace)
    writes = _writes(pair.stack.audit_log, pair.since)
    terms = _terms(writes)
    assert len({identity for _, identity in terms}) >= 3, f"expected several leaders over the module: {terms}"
    # The standby writes nothing at all but tries at the Lease: every other write is the holder's.
    strays = [w for w in writes if not w.lease and _holder_at(terms, w.at) != w.identity]
    assert not strays, f"writes by a process that did not hold the lease: {strays[:5]}"
    # So no object is written by two processes within one term.
    by_term: dict[tuple[int, tuple[str, str, str]], set[str]] = {}
    for w in writes:
        if not w.lease:
            term = sum(1 for start, _ in terms if start <= w.at)
            by_term.setdefault((term, w.obj), set()).add(w.identity)
    assert not {k: v for k, v in by_term.items() if len(v) > 1}


def test_the_chart_grants_every_lease_request_the_elector_makes(pair: Pair) -> None:
    """get, create, update and the candidates' watch of the one Lease: none refused (403)."""
    verbs, refused = set(), []
    with pair.stack.audit_log.open() as fh:
        for line in fh:
            event = json.loads(line)
            if event.get("stage") != "ResponseComplete" or event["requestReceivedTimestamp"] < pair.since:
                continue
            if event["user"]["username"] != OPERATOR_USER or event.get("objectRef", {}).get("resource") != "leases":
                continue
            verbs.add(event["verb"])
            if event.get("responseStatus", {}).get("code") == 403:
                refused.append(event["requestURI"])
    assert not refused, refused
    assert {"get", "update", "watch"} <= verbs, verbs


def test_idle_writes_are_one_lease_renewal_per_retry_period(pair: Pair, namespace: str) -> None:
    _platform(pair.kube, namespace)
    pair.leader()
    window = 8.0
    begin = datetime.now(UTC)
    start, end = (moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for moment in (begin, begin + timedelta(seconds=window)))
    # The window is judged by the API server's own timestamps, so a slow machine can neither stretch
    # nor shrink it: it is over once the log holds a renewal from after its end.
    eventually(
        lambda: any(w.lease and w.at >= end for w in _writes(pair.stack.audit_log, start)),
        timeout=window + 60,
        what="a renewal after the window",
    )
    # Earlier tests' namespaces may still be going away: count the Lease and this platform's.
    writes = [w for w in _writes(pair.stack.audit_log, start) if w.at < end and (w.lease or w.obj[1] == namespace)]
    assert all(w.lease and w.ok for w in writes), [w for w in writes if not w.lease]
    assert len({w.identity for w in writes}) == 1, "only the leader renews"
    period = float(ELECTION_ENV["KEELSON_LEASE_RETRY_PERIOD_SECONDS"])
    assert window / period - 2 <= len(writes) <= window / period + 2, len(writes)
