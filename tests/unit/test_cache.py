"""The child cache: the owner index keeps a platform's pruning to its own children."""

import copy
from typing import Any

from keelson.controller.cache import DictCache, controller_uid, owner_entry
from keelson.controller.reconciler import Reconciler
from tests.cases.invalid_platforms import example
from tests.unit.test_reconciler import FakeApi


class CountingStore(dict[tuple[str, str], Any]):
    """A store that counts the cached objects a reader touches (a full scan touches them all)."""

    touched = 0

    def get(self, key: Any, default: Any = None) -> Any:
        CountingStore.touched += 1
        return super().get(key, default)

    def keys(self) -> Any:
        CountingStore.touched += len(self)
        return super().keys()


class IndexedApi(FakeApi):
    """FakeApi that also keeps the owner index, as kopf's second index per kind does."""

    def _store(self, kind: str) -> dict[tuple[str, str], Any]:
        self.cache.owners.setdefault(kind, {})
        return self.cache.stores.setdefault(kind, CountingStore())  # type: ignore[return-value]

    async def apply(self, obj: dict[str, Any], *, field_manager: str = "keelson-operator") -> dict[str, Any]:
        live = await super().apply(obj, field_manager=field_manager)
        meta = live["metadata"]
        for uid, key in owner_entry(meta["namespace"], meta["name"], live).items():
            self.cache.owners[live["kind"]].setdefault(uid, set()).add(key)  # type: ignore[attr-defined]
        return live


def _platform(namespace: str, uid: str) -> dict[str, Any]:
    doc = example()
    doc["metadata"].update(namespace=namespace, uid=uid, generation=1, resourceVersion="1")
    return doc


def _add_other_platforms(cache: DictCache, count: int) -> int:
    """Copies of ns/shop's children in other namespaces, owned by other platforms."""
    added = 0
    for kind, store in cache.stores.items():
        owners = cache.owners[kind]
        for (_, name), obj in list(store.items()):
            for i in range(count):
                other = copy.deepcopy(obj)
                other["metadata"]["namespace"] = f"other-{i}"
                for ref in other["metadata"].get("ownerReferences", []):
                    ref["uid"] = f"other-uid-{i}"
                store[(f"other-{i}", name)] = other  # type: ignore[index]
                owners.setdefault(f"other-uid-{i}", set()).add((f"other-{i}", name))  # type: ignore[attr-defined]
                added += 1
    return added


async def _touched_by_a_resync(others: int) -> tuple[int, int]:
    cache = DictCache()
    api = IndexedApi(cache)
    rec = Reconciler(api, cache, reference_image="img:1", now=lambda: "2026-01-01T00:00:00Z")  # type: ignore[arg-type]
    platform = _platform("ns", "p-uid")
    await rec.reconcile(platform)
    platform["status"] = api.status
    added = _add_other_platforms(cache, others)
    CountingStore.touched = 0
    outcome = await rec.reconcile(platform)
    assert outcome.ready and outcome.writes == 0
    return CountingStore.touched, added


async def test_a_reconcile_touches_only_its_own_platforms_children() -> None:
    alone, _ = await _touched_by_a_resync(0)
    crowded, added = await _touched_by_a_resync(50)
    assert added > 1500
    assert crowded == alone


async def test_pruning_finds_stale_children_through_the_owner_index() -> None:
    cache = DictCache()
    api = IndexedApi(cache)
    rec = Reconciler(api, cache, reference_image="img:1", now=lambda: "2026-01-01T00:00:00Z")  # type: ignore[arg-type]
    platform = _platform("ns", "p-uid")
    await rec.reconcile(platform)
    _add_other_platforms(cache, 3)
    platform["spec"]["services"] = [s for s in platform["spec"]["services"] if s["name"] != "users"]
    for svc in platform["spec"]["services"]:
        svc["calls"] = [c for c in svc.get("calls", []) if c != "users"]
    platform["status"] = api.status
    api.calls.clear()
    await rec.reconcile(platform)
    deleted = {(kind, name) for op, kind, name in api.calls if op == "delete"}
    assert ("Deployment", "users") in deleted and ("Service", "users") in deleted
    # Only ns/shop's own: the other platforms' copies of `users` are all still there.
    assert all((f"other-{i}", "users") in cache.stores["Deployment"] for i in range(3))


def test_the_owner_index_is_checked_against_the_object() -> None:
    """The two kopf indexes are updated one after the other: an entry may be stale for a moment."""
    obj = {"metadata": {"name": "a", "namespace": "ns", "ownerReferences": [{"uid": "new", "controller": True}]}}
    cache = DictCache({"ConfigMap": {("ns", "a"): obj}}, owners={"ConfigMap": {"old": [("ns", "a")]}})
    assert list(cache.owned_by("old")) == []
    assert controller_uid(obj) == "new"


def test_owner_entry() -> None:
    owned = {"metadata": {"ownerReferences": [{"uid": "u", "controller": True}]}}
    assert owner_entry("ns", "a", owned) == {"u": ("ns", "a")}
    assert owner_entry("ns", "a", {"metadata": {}}) == {}


def _checks(monkeypatch: Any) -> list[int]:
    import keelson.controller.cache as cache_module

    calls: list[int] = []
    real = cache_module.needs_apply

    def counted(desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
        calls.append(1)
        return real(desired, live)

    monkeypatch.setattr(cache_module, "needs_apply", counted)
    return calls


def test_the_drift_check_is_remembered_while_neither_side_changes(monkeypatch: Any) -> None:
    from keelson.controller.cache import SyncMemo
    from keelson.controller.drift import with_hash

    calls = _checks(monkeypatch)
    desired = with_hash(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}, "data": {"k": "v"}}
    )
    live = copy.deepcopy(desired)
    live["metadata"]["resourceVersion"] = "7"
    memo = SyncMemo()
    assert not memo.needs_apply(desired, live)
    assert not memo.needs_apply(desired, live)
    assert len(calls) == 1
    # The live object changed (a new resourceVersion): checked again, and found drifted.
    edited = copy.deepcopy(live)
    edited["metadata"]["resourceVersion"] = "8"
    edited["data"]["k"] = "hijacked"
    assert memo.needs_apply(desired, edited)
    assert memo.needs_apply(desired, edited)
    assert len(calls) == 3  # a drifted child is never remembered
    # The desired object changed (a new hash) while the live one did not: checked again.
    changed = with_hash({**desired, "data": {"k": "w"}})
    assert memo.needs_apply(changed, live)
    assert len(calls) == 4


def test_objects_without_a_resource_version_are_always_checked(monkeypatch: Any) -> None:
    from keelson.controller.cache import SyncMemo
    from keelson.controller.drift import with_hash

    calls = _checks(monkeypatch)
    desired = with_hash({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}})
    memo = SyncMemo()
    assert memo.needs_apply(desired, None)
    assert not memo.needs_apply(desired, copy.deepcopy(desired))
    assert not memo.needs_apply(desired, copy.deepcopy(desired))
    assert len(calls) == 3


def _versioned(obj: dict[str, Any], version: str, **data: str) -> dict[str, Any]:
    live = copy.deepcopy(obj)
    live["metadata"]["resourceVersion"] = version
    live.setdefault("data", {}).update(data)
    return live


def test_our_own_write_not_yet_in_the_cache_is_not_written_again() -> None:
    from keelson.controller.cache import SyncMemo
    from keelson.controller.drift import with_hash

    now = [100.0]
    memo = SyncMemo(expect_seconds=10, clock=lambda: now[0])
    desired = with_hash(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}, "data": {"k": "v"}}
    )
    key = ("ConfigMap", "ns", "a")
    # Created: until the watch shows it, the cache still says absent, which is not drift.
    assert memo.needs_apply(desired, None)
    memo.applied(desired, None, _versioned(desired, "5"))
    assert not memo.needs_apply(desired, None)
    assert memo.pending([key]) == 10
    # The watch delivers our write: compared as usual from then on, and nothing is pending.
    assert not memo.needs_apply(desired, _versioned(desired, "5"))
    assert memo.pending([key]) is None
    # Deleted by hand after that: absent is drift again at once.
    assert memo.needs_apply(desired, None)

    # An edit over a live object; the cache still shows the old version until the event comes.
    old = _versioned(desired, "6", k="hijacked")
    memo.applied(desired, old, _versioned(desired, "7"))
    assert not memo.needs_apply(desired, old)
    # Someone else's newer version (not ours): compared, and drifted.
    assert memo.needs_apply(desired, _versioned(desired, "8", k="again"))

    # The desired object changed since our write: the old expectation does not hold it back.
    memo.applied(desired, old, _versioned(desired, "9"))
    changed = with_hash({**desired, "data": {"k": "w"}})
    assert memo.needs_apply(changed, old)

    # Created and deleted before the cache ever showed it: written again once the expectation lapses.
    memo.applied(desired, None, _versioned(desired, "10"))
    now[0] += 4
    assert not memo.needs_apply(desired, None)
    assert memo.pending([key]) == 6
    now[0] += 6
    assert memo.needs_apply(desired, None)
    assert memo.pending([key]) is None
