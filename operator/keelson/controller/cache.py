"""Read access to the watch caches of the children: what the reconciler compares against.

The operator never GETs a child: kopf's watches keep an index per kind (see `handlers`), and the
reconciler reads them through this small interface, which tests replace with a dict.

A second index per kind maps an owner's uid to the keys of the children it controls, so that
pruning reads only the reconciled platform's children: its cost grows with that platform, not
with the number of objects of every platform in the cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from keelson.controller.drift import HASH_ANNOTATION, needs_apply
from keelson.kube.resources import CHILD_KINDS

# Children are stripped of what the operator never reads, to keep memory flat at scale.
_DROPPED_METADATA = ("managedFields",)


def snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """A plain, detached copy of a watched object without managedFields."""
    raw: dict[str, Any] = {k: _plain(v) for k, v in body.items()}
    meta = raw.get("metadata", {})
    for key in _DROPPED_METADATA:
        meta.pop(key, None)
    return raw


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class ChildCache(Protocol):
    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def owned_by(self, uid: str) -> Iterable[dict[str, Any]]: ...


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences", []) or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def owner_entry(namespace: str, name: str, obj: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """The owner index's entry for a child: its controller's uid → its (namespace, name).

    Empty, not None, for an object without a controller: kopf then drops an earlier entry.
    """
    uid = controller_uid(obj)
    return {uid: (namespace, name)} if uid is not None else {}


class DictCache:
    """A ChildCache over plain dicts: {kind: {(namespace, name): object}}.

    ``owners`` is the optional owner index, {kind: {owner uid: (namespace, name) keys}}; a kind
    without one is scanned whole by ``owned_by`` (fine for the small dicts of tests).
    """

    def __init__(
        self,
        stores: Mapping[str, Mapping[tuple[str, str], Any]] | None = None,
        owners: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.stores: dict[str, Mapping[tuple[str, str], Any]] = dict(stores or {})
        self.owners: dict[str, Mapping[str, Any]] = dict(owners or {})

    def _values(self, store: Mapping[tuple[str, str], Any], key: tuple[str, str]) -> Iterator[dict[str, Any]]:
        found = store.get(key)
        if found is None:
            return
        # kopf indexes hold a Store (a collection of values) per key; plain dicts hold the object.
        if isinstance(found, Mapping):
            yield dict(found)
        else:
            yield from found

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        store = self.stores.get(kind)
        if store is None:
            return None
        return next(self._values(store, (namespace, name)), None)

    def owned_by(self, uid: str) -> Iterator[dict[str, Any]]:
        for kind in CHILD_KINDS:
            store = self.stores.get(kind.kind)
            if store is None:
                continue
            owners = self.owners.get(kind.kind)
            keys = list(store.keys()) if owners is None else _keys(owners.get(uid))
            for key in keys:
                for obj in self._values(store, key):
                    # Checked again: the two indexes are updated one after the other.
                    if controller_uid(obj) == uid:
                        yield obj


def _keys(found: Any) -> list[tuple[str, str]]:
    """The (namespace, name) keys under one owner: a kopf Store of them, or a plain collection."""
    return [] if found is None else list(found)


class SyncMemo:
    """The drift check, remembered per child while neither side changes.

    ``needs_apply`` is pure: with the same desired object (its hash) and the same live object
    (its resourceVersion), the answer is the same. An idle resync asks it again for every child
    of every platform, and the field-by-field comparison is most of a pass's CPU; this answers
    from memory instead when the child was found in sync at that resourceVersion and hash.

    It also remembers what we just wrote (controller-runtime calls these expectations). The watch
    cache lags our own applies: a pass that starts before the event of an apply arrives still sees
    the object as it was (or absent) and would apply it again, an extra write per object at every
    creation (seen: a new PrometheusRule applied three times, which then counted towards the
    write-loop guard and held back a real repair). So, until the cache shows the version our apply
    made (or any other new version) and for at most `expect_seconds`, a live object still at the
    resourceVersion it had before our apply is taken as "not seen yet", not as drift. An object
    created and deleted by hand before the cache ever showed it looks the same as one not seen
    yet: `pending()` says how long until the expectation lapses, and the reconciler comes back then.
    """

    def __init__(
        self, limit: int = 200_000, expect_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.expect_seconds = expect_seconds
        self.clock = clock
        self._in_sync: dict[Key, tuple[str, str]] = {}
        self._expected: dict[Key, _Expected] = {}

    def awaiting(self, desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
        """Whether the cache still shows what was there before our apply of this desired object
        (the watch has not delivered it yet); a met or lapsed expectation is forgotten."""
        key, version, stamp = self._stamp(desired, live)
        expected = self._expected.get(key)
        if expected is None:
            return False
        if expected.stale(version or "", stamp[1], self.clock()):
            return True
        del self._expected[key]
        return False

    def needs_apply(self, desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
        if self.awaiting(desired, live):
            return False  # our own write is not in the cache yet
        key, version, stamp = self._stamp(desired, live)
        if version is not None and self._in_sync.get(key) == stamp:
            return False
        answer = needs_apply(desired, live)
        if answer or version is None:
            self._in_sync.pop(key, None)
        else:
            if len(self._in_sync) >= self.limit:  # deleted children's entries: start afresh
                self._in_sync.clear()
            self._in_sync[key] = stamp
        return answer

    def applied(self, desired: dict[str, Any], live: dict[str, Any] | None, made: dict[str, Any] | None) -> None:
        """`desired` was just applied over `live` (what the cache showed then); `made` is the
        server's answer."""
        key, version, stamp = self._stamp(desired, live)
        after = str(((made or {}).get("metadata") or {}).get("resourceVersion") or "")
        if len(self._expected) >= self.limit:
            self._expected.clear()
        self._expected[key] = _Expected(version or "", after, stamp[1], self.clock() + self.expect_seconds)

    def pending(self, keys: Iterable[Key]) -> float | None:
        """Seconds until the last of these children's expectations lapses, if any is unmet."""
        now = self.clock()
        waits = [e.until - now for k in keys if (e := self._expected.get(k)) is not None and e.until > now]
        return max(waits) if waits else None

    @staticmethod
    def _stamp(desired: dict[str, Any], live: dict[str, Any] | None) -> tuple[Key, str | None, tuple[str, str]]:
        meta = desired["metadata"]
        key = (desired["kind"], meta.get("namespace", ""), meta["name"])
        version = (live or {}).get("metadata", {}).get("resourceVersion")
        return key, version, (str(version), str(meta.get("annotations", {}).get(HASH_ANNOTATION)))


Key = tuple[str, str, str]  # (kind, namespace, name)


@dataclass(frozen=True)
class _Expected:
    before: str  # the live resourceVersion when we applied ("" when absent)
    after: str  # the one our apply made
    digest: str  # the desired object's hash
    until: float

    def stale(self, version: str, digest: str, now: float) -> bool:
        """The cache still shows what was there before our apply of this same desired object."""
        return version == self.before and version != self.after and digest == self.digest and now < self.until
