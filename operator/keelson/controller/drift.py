"""Deciding whether a child needs a write. Pure: no I/O.

Server-side apply of an unchanged object is still a PATCH request, and an operator that patches
every child on every resync is never idle. So before applying, the desired object is compared
with the live one from the watch cache:

- every field Keelson renders must be present in the live object with the same value (fields
  others own, and fields the API server defaulted, are ignored);
- the live object must carry the hash of the desired object Keelson last applied, which catches
  fields Keelson *stopped* rendering (SSA removes them only when we apply again).

"The same value" means the same as the API server stores it, not as we wrote it. The server
omits empty strings, lists and maps of `omitempty` fields (`ingress: []`, `value: ""`) and
canonicalises quantities (`0.5` → `500m`, rounded up to milli units). A comparison that missed one
of those would see drift on every pass and patch the object forever, so the rules are: an empty
or null desired value matches an absent live field, and quantities compare by their value at the
server's precision. A property test applies generated platforms to a real kube-apiserver and
checks that every object read back compares equal (e2e/test_drift_roundtrip.py); should a new
field slip through anyway, the write-loop guard (`loopguard`) stops the writes and names it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from decimal import Decimal
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


def _is_empty(value: Any) -> bool:
    """What the API server stores as nothing: null, and the empty string, list and map of an
    `omitempty` field, or a map of nothing but those. (`False` and `0` are values, kept.)"""
    if isinstance(value, dict):
        return all(_is_empty(v) for v in value.values())
    return value is None or (isinstance(value, str | list) and len(value) == 0)


_MILLI = Decimal("1e-3")


def _server_quantity(value: str | int) -> int:
    """A quantity in milli units, rounded up as the API server rounds a container's resources
    when it stores them (`100n` and `0.0001` CPU both read back as `1m`)."""
    return math.ceil(Decimal(parse_quantity(value)) / _MILLI)


def _scalar_equal(desired: Any, live: Any) -> bool:
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live  # in Python False == 0; in the API they differ
    if desired == live:
        return True
    # The API server canonicalises quantities ("0.5" CPU reads back as "500m").
    if isinstance(desired, str | int | float) and isinstance(live, str | int | float):
        try:
            return _server_quantity(desired) == _server_quantity(live)  # type: ignore[arg-type]
        except (ValueError, TypeError, ArithmeticError):
            return False
    return False


def differences(desired: Any, live: Any, path: str = "") -> Iterator[str]:
    """The paths of the fields of `desired` that `live` does not hold with an equal value.

    Lists of scalars must be equal (they are atomic in the API). Lists of objects must match
    element by element, in order, allowing extra live elements that someone else added (map
    lists such as env or ports are merged by SSA, so others' entries are legitimate)."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            if not (live is None and _is_empty(desired)):
                yield path or "."
            return
        for key, value in desired.items():
            sub = f"{path}.{key}" if path else key
            if live.get(key) is None:
                if not _is_empty(value):
                    yield sub
                continue
            yield from differences(value, live[key], sub)
        return
    if isinstance(desired, list):
        if live is None and not desired:
            return
        if not isinstance(live, list):
            yield path
            return
        if not any(isinstance(item, dict) for item in desired):
            if len(desired) != len(live) or not all(_scalar_equal(d, v) for d, v in zip(desired, live, strict=True)):
                yield path
            return
        remaining = iter(live)
        for index, item in enumerate(desired):
            if any(not any(differences(item, candidate)) for candidate in remaining):
                continue
            # No match: name the fields that differ in the live element of the same name, if any.
            same_name = [c for c in live if isinstance(c, dict) and item.get("name") and c.get("name") == item["name"]]
            if same_name:
                yield from differences(item, same_name[0], f"{path}[{index}]")
            else:
                yield f"{path}[{index}]"
            return  # the order is lost from here on; one path names the problem
        return
    if not _scalar_equal(desired, live):
        yield path


def is_subset(desired: Any, live: Any) -> bool:
    """True when every field of `desired` is in `live` with an equal value (see `differences`)."""
    return not any(differences(desired, live))


def needs_apply(desired_with_hash: dict[str, Any], live: dict[str, Any] | None) -> bool:
    if live is None:
        return True
    wanted = desired_with_hash["metadata"]["annotations"][HASH_ANNOTATION]
    if live.get("metadata", {}).get("annotations", {}).get(HASH_ANNOTATION) != wanted:
        return True
    return not is_subset(desired_with_hash, live)


def drifted_fields(desired_with_hash: dict[str, Any], live: dict[str, Any] | None) -> list[str]:
    """Why `needs_apply` says yes, field by field: for the write-loop guard's message."""
    if live is None:
        return ["(the object does not exist)"]
    meta = desired_with_hash["metadata"]
    annotations = {k: v for k, v in meta["annotations"].items() if k != HASH_ANNOTATION}
    fields = set(differences({**desired_with_hash, "metadata": {**meta, "annotations": annotations}}, live))
    if live.get("metadata", {}).get("annotations", {}).get(HASH_ANNOTATION) != meta["annotations"][HASH_ANNOTATION]:
        fields.add(f"metadata.annotations.{HASH_ANNOTATION}")
    return sorted(fields)
