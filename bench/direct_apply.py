"""The second plain-apply baseline: rendered objects applied straight to the API server with
server-side apply, as many requests in flight as the operator allows itself (its reconciler's
write semaphore), over the operator's own HTTP client. No drift check, no status, no watches:
the API server's real limit for writing these objects at that concurrency.

    python bench/direct_apply.py -f objects.yaml --kubeconfig PATH [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import client as k8s_client  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402

from keelson.kube.client import KubeClient  # noqa: E402

# The operator's Reconciler(concurrency=8) write semaphore, shared by its workers.
OPERATOR_CONCURRENCY = 8
FIELD_MANAGER = "bench-direct-apply"


def client_for(kubeconfig: Path) -> KubeClient:
    cfg = k8s_client.Configuration()
    k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return KubeClient(cfg)


async def apply_all(
    objects: Iterable[dict[str, Any]], kubeconfig: Path, *, concurrency: int = OPERATOR_CONCURRENCY
) -> float:
    """Apply every object with at most ``concurrency`` requests in flight; the seconds it took."""
    api = client_for(kubeconfig)
    gate = asyncio.Semaphore(concurrency)

    async def one(obj: dict[str, Any]) -> None:
        async with gate:
            await api.apply(obj, field_manager=FIELD_MANAGER)

    start = time.monotonic()
    try:
        await asyncio.gather(*(one(obj) for obj in objects))
    finally:
        await api.aclose()
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-f", "--filename", type=Path, required=True)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=OPERATOR_CONCURRENCY)
    args = parser.parse_args()
    docs = [d for d in yaml.safe_load_all(args.filename.read_text()) if d]
    seconds = asyncio.run(apply_all(docs, args.kubeconfig, concurrency=args.concurrency))
    print(f"applied {len(docs)} objects in {seconds:.1f} s with {args.concurrency} in flight")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
