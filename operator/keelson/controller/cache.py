"""Read access to the watch caches of the children: what the reconciler compares against.

The operator never GETs a child: kopf's watches keep an index per kind (see `handlers`), and the
reconciler reads them through this small interface, which tests replace with a dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

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


class DictCache:
    """A ChildCache over plain dicts: {kind: {(namespace, name): object}}."""

    def __init__(self, stores: Mapping[str, Mapping[tuple[str, str], Any]] | None = None) -> None:
        self.stores: dict[str, Mapping[tuple[str, str], Any]] = dict(stores or {})

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
            for key in list(store.keys()):
                for obj in self._values(store, key):
                    if controller_uid(obj) == uid:
                        yield obj
