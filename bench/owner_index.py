"""bench/owner_index: the cost of finding one platform's children in the watch caches, by a
scan of every cached object (before) and through the owner index (now), with the objects of
40 platforms of 25 services cached (the --many mode of bench/converge.py). No cluster needed.

    python bench/owner_index.py [--platforms 40] [--services 25] [--rounds 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import measuring  # noqa: E402
from keelson.controller.cache import DictCache, owner_entry  # noqa: E402
from tests.cases.invalid_platforms import big_platform  # noqa: E402


def caches(platforms: int, services: int) -> tuple[DictCache, DictCache, int]:
    """The same cached children twice: without an owner index (scanned) and with one."""
    objects = measuring.render(big_platform(services, name="bench"), [f"ns-{i:02d}" for i in range(platforms)])
    stores: dict[str, dict[tuple[str, str], Any]] = {}
    owners: dict[str, dict[str, set[tuple[str, str]]]] = {}
    for obj in objects:
        meta = obj["metadata"]
        meta["ownerReferences"] = [{"uid": f"uid-{meta['namespace']}", "controller": True}]
        stores.setdefault(obj["kind"], {})[(meta["namespace"], meta["name"])] = obj
        for uid, key in owner_entry(meta["namespace"], meta["name"], obj).items():
            owners.setdefault(obj["kind"], {}).setdefault(uid, set()).add(key)
    return DictCache(stores), DictCache(stores, owners), len(objects)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--platforms", type=int, default=40)
    parser.add_argument("--services", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    scan, indexed, total = caches(args.platforms, args.services)
    for label, cache in (("scan of every cached object", scan), ("owner index", indexed)):
        start = time.process_time()
        for _ in range(args.rounds):
            found = list(cache.owned_by("uid-ns-07"))
        per_call = (time.process_time() - start) / args.rounds
        print(f"{label}: {len(found)} children among {total} cached objects, {per_call * 1e3:.3f} ms of CPU per call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
