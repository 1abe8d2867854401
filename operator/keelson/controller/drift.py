"""Deciding whether a child needs a write. Pure: no I/O.

Server-side apply of an unchanged object is still a PATCH request, and an operator that patches
every child on every resync is never idle. So before applying, the desired object is compared
with the live one from the watch cache:

- every field Keelson renders must be present in the live object with the same value (fields
  others own, and fields the API server defaulted, are ignored);
- the live object must carry the hash of the desired object Keelson last applied, which catches
  fields Keelson *stopped* rendering (SSA removes them only when we apply again).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubernetes.utils import parse_quantity

HASH_ANNOTATION = "keelson.dev/applied-hash"


def desired_hash(obj: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:20]


def with_hash(obj: dict[str, Any]) -> dict[str, Any]:
    """The object to apply: the desired object, annotated with its own hash."""
    digest = desired_hash(obj)
    meta = dict(obj["metadata"])
    meta["annotations"] = {**meta.get("annotations", {}), HASH_ANNOTATION: digest}
    return {**obj, "metadata": meta}


def _scalar_equal(desired: Any, live: Any) -> bool:
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live  # in Python False == 0; in the API they differ
    if desired == live:
        return True
    # The API server canonicalises quantities ("0.5" CPU reads back as "500m").
    if isinstance(desired, str | int) and isinstance(live, str | int) and not isinstance(desired, bool):
        try:
            return bool(parse_quantity(desired) == parse_quantity(live))
        except (ValueError, TypeError):
            return False
    return False


def is_subset(desired: Any, live: Any) -> bool:
    """True when every field of `desired` is in `live` with an equal value.

    Lists of scalars must be equal (they are atomic in the API). Lists of objects must match
    element by element, in order, allowing extra live elements that someone else added (map
    lists such as env or ports are merged by SSA, so others' entries are legitimate)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and is_subset(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list):
            return False
        if not any(isinstance(item, dict) for item in desired):
            return len(desired) == len(live) and all(_scalar_equal(d, v) for d, v in zip(desired, live, strict=True))
        remaining = iter(live)
        return all(any(is_subset(item, candidate) for candidate in remaining) for item in desired)
    return _scalar_equal(desired, live)


def needs_apply(desired_with_hash: dict[str, Any], live: dict[str, Any] | None) -> bool:
    if live is None:
        return True
    wanted = desired_with_hash["metadata"]["annotations"][HASH_ANNOTATION]
    if live.get("metadata", {}).get("annotations", {}).get(HASH_ANNOTATION) != wanted:
        return True
    return not is_subset(desired_with_hash, live)
