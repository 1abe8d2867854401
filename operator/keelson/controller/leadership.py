"""Leader election on a `coordination.k8s.io/v1` Lease: two replicas, one writer.

The semantics are client-go's (and so controller-runtime's): a candidate takes the Lease when it
is free, released, or not renewed for `leaseDurationSeconds` as measured on the candidate's own
clock from the moment it last saw the record change (clocks of different nodes are never
compared); every write is a compare-and-swap on `resourceVersion`, so of two candidates only one
wins; the leader renews every retry period and, should no renewal succeed within the renew
deadline, gives up. Because the lease outlasts the renew deadline, a leader that lost contact has
stopped before anyone else may take over. Like client-go, this is no fencing: a write already on
the wire when leadership ends can still land (tests/unit/test_leadership.py, docs/architecture.md).

`decide` and `Observation` are pure; `Elector` drives them through a `LeaseStore` with an
injected clock and sleep, so the unit tests run lease expiry instantly; `KubeLeaseStore` is the
thin I/O part.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from keelson.kube.client import ApiError, KubeClient
from keelson.kube.resources import Kind

log = logging.getLogger("keelson.leadership")

LEASE_KIND = Kind("coordination.k8s.io/v1", "Lease", "leases")
LEASE_NAME = "keelson-operator"


@dataclass(frozen=True)
class Timings:
    """How long a lease lasts, how long a leader keeps trying to renew, how often it renews.

    The defaults trade failover time for a low idle write rate: one renewal, the operator's only
    write when nothing changes, every 15 s (4 a minute; controller-runtime's 2 s makes 30,
    OpenShift's 26 s about 2.3). A crashed leader is replaced within lease + 1.2 x retry = 78 s
    at most, well inside the 300 s a single replica on a lost node waits for its eviction; a
    leader that stops on purpose (SIGTERM) releases the Lease, and the standby, which watches it,
    takes it at once. The renew deadline leaves two tries at the normal pace and more at the
    faster pace of a failing renewal; the 20 s between renew deadline and lease duration is the
    margin in which a leader that lost contact stops before another may start.
    """

    lease_duration: float = 60.0
    renew_deadline: float = 40.0
    retry_period: float = 15.0

    def __post_init__(self) -> None:
        # client-go's checks: otherwise a leader could still be writing when its lease expires.
        if not self.lease_duration > self.renew_deadline > self.retry_period * 1.2 > 0:
            raise ValueError(
                "leader election needs lease duration > renew deadline > 1.2 x retry period > 0, got "
                f"{self.lease_duration}/{self.renew_deadline}/{self.retry_period}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Timings:
        default = cls()
        return cls(
            lease_duration=float(environ.get("KEELSON_LEASE_DURATION_SECONDS", default.lease_duration)),
            renew_deadline=float(environ.get("KEELSON_LEASE_RENEW_DEADLINE_SECONDS", default.renew_deadline)),
            retry_period=float(environ.get("KEELSON_LEASE_RETRY_PERIOD_SECONDS", default.retry_period)),
        )


@dataclass(frozen=True)
class LeaseRecord:
    holder: str  # "" once released
    duration_seconds: int
    transitions: int
    acquire_time: str | None
    resource_version: str

    @classmethod
    def from_lease(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            transitions=int(spec.get("leaseTransitions") or 0),
            acquire_time=spec.get("acquireTime"),
            resource_version=str(lease.get("metadata", {}).get("resourceVersion", "")),
        )


class Action(enum.Enum):
    CREATE = "create"  # no Lease yet
    TAKE = "take"  # free, released or expired: take it over
    RENEW = "renew"  # ours
    WAIT = "wait"  # someone else's, still valid


@dataclass
class Observation:
    """The last record seen and when it was first seen, on our own monotonic clock."""

    record: LeaseRecord | None = None
    since: float = 0.0

    def see(self, record: LeaseRecord | None, now: float) -> None:
        if record is None or self.record is None or record.resource_version != self.record.resource_version:
            self.record, self.since = record, now


def decide(observation: Observation, *, identity: str, now: float) -> Action:
    record = observation.record
    if record is None:
        return Action.CREATE
    if record.holder == identity:
        return Action.RENEW
    if not record.holder or now >= observation.since + record.duration_seconds:
        return Action.TAKE
    return Action.WAIT


def micro_time(moment: datetime) -> str:
    """A `metav1.MicroTime`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_spec(
    action: Action, previous: LeaseRecord | None, *, identity: str, duration: int, now: str
) -> dict[str, Any]:
    """The spec written for `action` (CREATE, TAKE or RENEW)."""
    keep = action is Action.RENEW and previous is not None
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": previous.acquire_time if keep and previous is not None else now,
        "renewTime": now,
        "leaseTransitions": (previous.transitions if previous else 0) + (1 if action is Action.TAKE else 0),
    }


class Conflict(Exception):
    """The Lease changed since it was read (409) or was created by someone else meanwhile."""


class LeaseStore(Protocol):
    async def get(self) -> LeaseRecord | None: ...

    async def write(self, spec: dict[str, Any], *, resource_version: str | None) -> LeaseRecord:
        """Create (resource_version None) or replace with that precondition; Conflict if it lost."""
        ...

    async def wait(self, resource_version: str, seconds: float) -> None:
        """Return when the Lease changes after `resource_version`, or after that many `seconds`."""
        ...


class KubeLeaseStore:
    def __init__(self, client: KubeClient, namespace: str, name: str = LEASE_NAME) -> None:
        self._client, self._namespace, self._name = client, namespace, name

    async def get(self) -> LeaseRecord | None:
        lease = await self._client.get(LEASE_KIND, self._namespace, self._name)
        return LeaseRecord.from_lease(lease) if lease is not None else None

    async def write(self, spec: dict[str, Any], *, resource_version: str | None) -> LeaseRecord:
        meta: dict[str, Any] = {"name": self._name, "namespace": self._namespace}
        body = {"apiVersion": LEASE_KIND.api_version, "kind": LEASE_KIND.kind, "metadata": meta, "spec": spec}
        try:
            if resource_version is None:
                written = await self._client.create(LEASE_KIND, self._namespace, body)
            else:
                meta["resourceVersion"] = resource_version
                written = await self._client.replace(LEASE_KIND, self._namespace, self._name, body)
        except ApiError as exc:
            if exc.status == 409:
                raise Conflict(str(exc)) from exc
            raise
        return LeaseRecord.from_lease(written)

    async def wait(self, resource_version: str, seconds: float) -> None:
        # A watch, not a sleep: a candidate sees a release at once (a SIGTERM hand-over takes
        # well under a second, not up to a retry period), at the cost of reads only.
        await self._client.watch_one(
            LEASE_KIND, self._namespace, self._name, resource_version=resource_version, seconds=seconds
        )


def _wall_now() -> str:
    return micro_time(datetime.now(UTC))


class Elector:
    def __init__(
        self,
        store: LeaseStore,
        *,
        identity: str,
        timings: Timings,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], str] = _wall_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.store, self.identity, self.timings = store, identity, timings
        self._clock, self._wall, self._sleep, self._jitter = clock, wall, sleep, jitter
        self.observation = Observation()
        self.leading = False
        self.renewed_at = 0.0  # our clock, at the last successful write
        self.contact_at: float | None = None  # our clock, at the last answer of the API server

    def valid(self) -> bool:
        """Whether we may still act as the leader: a renewal succeeded within the renew deadline.
        Checked before each reconcile pass, so that a leader that was frozen (a paused process, a
        stalled node) and wakes up after its lease went to another does not start a pass before
        `hold` has noticed."""
        return self.leading and self._clock() - self.renewed_at < self.timings.renew_deadline

    def in_contact(self) -> bool:
        """Whether the API server answered us within a lease duration: ready to lead."""
        return self.contact_at is not None and self._clock() - self.contact_at < self.timings.lease_duration

    async def try_once(self) -> bool:
        """One attempt to acquire or renew. True if we hold the lease afterwards."""
        record = self.observation.record
        if not (self.leading and record is not None and record.holder == self.identity):
            # A leader renews with its last resourceVersion and reads only after a conflict:
            # one request per renewal, not two.
            record = await self.store.get()
            self.contact_at = self._clock()
            self.observation.see(record, self._clock())
        action = decide(self.observation, identity=self.identity, now=self._clock())
        if action is Action.WAIT:
            return False
        spec = lease_spec(
            action, record, identity=self.identity, duration=round(self.timings.lease_duration), now=self._wall()
        )
        attempt_started = self._clock()
        try:
            written = await self.store.write(spec, resource_version=record.resource_version if record else None)
        except Conflict:
            self.contact_at = self._clock()
            if self.leading:  # someone else wrote it: read it again at the next try
                self.observation = Observation()
            return False
        self.contact_at = self.renewed_at = attempt_started  # the lease counts from before the write
        self.observation.see(written, attempt_started)
        if action is not Action.RENEW:
            log.info("became the leader (lease %s)", action.value)
        self.leading = True
        return True

    async def acquire(self) -> None:
        """Return once we are the leader. Until then try again when the Lease changes (a watch:
        a release is seen at once) or at the latest every retry period, with jitter, so that
        candidates started together do not keep colliding."""
        while True:
            try:
                if await self.try_once():
                    return
            except Exception as exc:  # a candidate keeps trying, whatever one attempt met
                log.warning("could not read or take the lease: %s", exc)
            pause = self.timings.retry_period * (1 + 0.2 * self._jitter())
            record = self.observation.record
            if record is None or not record.holder:
                await self._sleep(pause)
                continue
            started = self._clock()
            try:
                await self.store.wait(record.resource_version, pause)
            except ApiError as exc:  # 410 Gone, a dropped connection: fall back to the pace
                log.debug("watching the lease failed: %s", exc)
                await self._sleep(max(0.0, pause - (self._clock() - started)))

    async def hold(self) -> None:
        """Renew every retry period; return once leadership is lost (no renewal within the renew
        deadline, or someone else holds the lease). The caller must stop writing at once."""
        while True:
            await self._sleep(self.timings.retry_period)
            while True:
                remaining = self.renewed_at + self.timings.renew_deadline - self._clock()
                if remaining <= 0:
                    log.error("could not renew the lease within %.0fs: leadership lost", self.timings.renew_deadline)
                    self.leading = False
                    return
                try:
                    async with asyncio.timeout(remaining):
                        renewed = await self.try_once()
                except Exception as exc:  # an API error, the deadline, a malformed answer: not renewed
                    log.warning("lease renewal failed: %s", exc or type(exc).__name__)
                    renewed = False
                if renewed:
                    break
                record = self.observation.record
                if record is not None and record.holder not in ("", self.identity):
                    log.error("the lease is held by %s: leadership lost", record.holder)
                    self.leading = False
                    return
                # A failing renewal is retried faster than the normal pace, within the deadline.
                await self._sleep(min(self.timings.retry_period / 4, max(remaining, 0.0)))

    async def release(self) -> None:
        """Hand the lease over at once (client-go's ReleaseOnCancel): holder cleared, 1 s left."""
        record = self.observation.record
        if not self.leading or record is None:
            return
        self.leading = False
        spec = lease_spec(Action.RENEW, record, identity="", duration=1, now=self._wall())
        try:
            await self.store.write(spec, resource_version=record.resource_version)
            log.info("released the lease")
        except (ApiError, Conflict) as exc:
            log.warning("could not release the lease (it expires on its own): %s", exc)
