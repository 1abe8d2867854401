"""bench/converge: time from `kubectl apply` of a platform to Ready, against a plain
`keelson render | kubectl apply --server-side` of the same objects (the API server's own limit),
with the operator's writes per converge, its writes while idle, and its peak RSS.

    python bench/converge.py [--sizes 5 50 200] [--idle-seconds 120] [--state-dir DIR]

Runs on the embedded local stack (started if needed). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from e2e.kube import Kube, eventually, operator_writes, utcnow  # noqa: E402
from keelson.devstack.stack import LocalStack  # noqa: E402
from tests.cases.invalid_platforms import big_platform  # noqa: E402


def deployments_available(kube: Kube, namespace: str, expected: int) -> bool:
    deps = kube.list("deployments", namespace)
    return len(deps) == expected and all(
        d.get("status", {}).get("availableReplicas", 0) >= d["spec"].get("replicas", 1) >= 1 for d in deps
    )


def is_ready(kube: Kube, namespace: str) -> bool:
    cond = kube.condition("bench", namespace)
    return bool(cond and cond["status"] == "True")


def operator_rss_peak_mb(stack: LocalStack) -> float:
    pid = int(json.loads((stack.state_dir / "pids" / "operator.pid").read_text())["pid"])
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_size(stack: LocalStack, kube: Kube, services: int, idle_seconds: float) -> dict[str, Any]:
    doc = big_platform(services, name="bench")
    timeout = 60 + services * 3

    # Baseline: the same objects, applied by kubectl server-side, no operator involved.
    plain_ns = kube.namespace(f"plain-{services}-{int(time.time())}")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        yaml.safe_dump(doc, fh)
    rendered = subprocess.run(
        [sys.executable, "-m", "keelson", "render", "-f", fh.name, "-n", plain_ns],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    start = time.monotonic()
    kube.run("apply", "--server-side", "-f", "-", stdin=rendered, timeout=timeout)
    eventually(lambda: deployments_available(kube, plain_ns, services), timeout=timeout, interval=0.25)
    plain = time.monotonic() - start

    # The nodes' pod capacity (3 x 110) holds one run at a time: clear the baseline away first.
    kube.run("delete", "namespace", plain_ns, "--wait=true", timeout=timeout)

    # The operator.
    ns = kube.namespace(f"op-{services}-{int(time.time())}")
    since = utcnow()
    start = time.monotonic()
    kube.apply(ns, doc)
    eventually(lambda: is_ready(kube, ns), timeout=timeout, interval=0.25)
    converge = time.monotonic() - start
    writes = len(operator_writes(stack.audit_log, since=since, namespace=ns))

    # The Ready Event is posted just after the status flips: start the idle window after it.
    eventually(lambda: any(e["reason"] == "Ready" for e in kube.list("events", ns)), timeout=30, what="the Ready event")
    idle_since = utcnow()
    time.sleep(idle_seconds)  # the measurement window itself
    idle = len(operator_writes(stack.audit_log, since=idle_since))
    kube.run("delete", "namespace", ns, "--wait=true", timeout=timeout)
    return {
        "services": services,
        "objects": rendered.count("\nkind: ") + rendered.startswith("kind: "),
        "plain_s": round(plain, 1),
        "operator_s": round(converge, 1),
        "ratio": round(converge / plain, 2),
        "writes": writes,
        "idle_writes": idle,
        "rss_mb": round(operator_rss_peak_mb(stack), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 50, 200])
    parser.add_argument("--idle-seconds", type=float, default=120)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("KEELSON_BENCH_STATE_DIR", Path.home() / ".local/state/keelson/bench")),
    )
    args = parser.parse_args()

    stack = LocalStack(args.state_dir)
    stack.up(kafka=False, postgres=False, operator=True, progress=lambda m: print(f"# {m}", file=sys.stderr))
    stack.stop_operator()
    stack.start_operator()  # a fresh process, so peak RSS is this run's
    kube = Kube(stack.admin_kubeconfig)
    rows = []
    for n in args.sizes:
        rows.append(run_size(stack, kube, n, args.idle_seconds))
        print(f"# {json.dumps(rows[-1])}", file=sys.stderr, flush=True)

    print(
        f"converge benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, idle window {args.idle_seconds:.0f} s"
    )
    print()
    print(
        "| services | objects | plain SSA apply → available (s) | operator apply → Ready (s) | ratio "
        "| operator writes per converge | operator writes while idle | operator peak RSS (MB) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['services']} | {r['objects']} | {r['plain_s']} | {r['operator_s']} | {r['ratio']} | "
            f"{r['writes']} | {r['idle_writes']} | {r['rss_mb']} |"
        )
    print()
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
