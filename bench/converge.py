"""bench/converge: time from `kubectl apply` of a platform to Ready, against a plain
`keelson render | kubectl apply --server-side` of the same objects (the API server's own limit),
with the operator's writes per converge, its writes while idle, and its peak RSS.

    python bench/converge.py [--sizes 5 50 200] [--idle-seconds 120] [--state-dir DIR]
    python bench/converge.py --external [--sizes 200] [--state-dir DIR]

Runs on the embedded local stack (started if needed). Prints a Markdown table.

`--external` measures the external work instead: every fifth service has a database (provider
postgres on the stack's server) and publishes an event the next one subscribes to (provider admin
on the stack's broker); the figures are the PostgreSQL connections (the server's
pg_stat_database.sessions) and Kafka admin requests (the operator's own counter) from the apply
to Ready, with the operator's count of area passes run and skipped.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
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


def external_platform(services: int, stack: LocalStack) -> dict[str, Any]:
    doc = big_platform(services, name="bench")
    doc["spec"]["kafka"] = {
        "provider": "admin",
        "bootstrapServers": stack.kafka_bootstrap,
        "partitions": 1,
        "replicationFactor": 1,
    }
    doc["spec"]["databases"] = {"provider": "postgres", "adminSecretRef": {"name": "pg-admin"}}
    doc["spec"]["domain"] = f"bench{int(time.time()) % 100000}"  # topics are cluster-wide: fresh names
    for i, svc in enumerate(doc["spec"]["services"]):
        if i % 5 == 0:
            svc["database"] = {"engine": "postgres"}
            svc["publishes"] = [f"event{i:03d}.happened"]
        if i % 5 == 1:
            svc["subscribes"] = [f"event{i - 1:03d}.happened"]
    return doc


def operator_metrics(stack: LocalStack) -> dict[str, float]:
    port = stack.ports["operator-metrics"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("keelson_") and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def pg_sessions(stack: LocalStack) -> int:
    import psycopg

    with psycopg.connect(stack.postgres_admin_uri, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT sum(sessions) FROM pg_stat_database").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def run_external(stack: LocalStack, kube: Kube, services: int) -> dict[str, Any]:
    doc = external_platform(services, stack)
    timeout = 60 + services * 3
    ns = kube.namespace(f"ext-{services}-{int(time.time())}")
    admin = base64.b64encode(stack.postgres_admin_uri.encode()).decode()
    kube.apply(ns, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pg-admin"}, "data": {"uri": admin}})
    before_m, before_pg = operator_metrics(stack), pg_sessions(stack)
    start = time.monotonic()
    kube.apply(ns, doc)
    eventually(lambda: is_ready(kube, ns), timeout=timeout, interval=0.5)
    converge = time.monotonic() - start
    # Sessions opened by pg_sessions itself are one per call: subtract the one of this reading.
    after_pg, after_m = pg_sessions(stack) - 1, operator_metrics(stack)

    def delta(name: str) -> float:
        return after_m.get(name, 0.0) - before_m.get(name, 0.0)

    row = {
        "services": services,
        "operator_s": round(converge, 1),
        "reconciles": delta("keelson_reconcile_duration_seconds_count"),
        "pg_sessions": after_pg - before_pg,
        "pg_connections_operator": delta("keelson_postgres_connections_total"),
        "kafka_admin_requests": delta("keelson_kafka_admin_requests_total"),
        "db_passes": delta('keelson_area_passes_total{area="DatabasesReady"}'),
        "db_skipped": delta('keelson_area_passes_skipped_total{area="DatabasesReady"}'),
        "topic_passes": delta('keelson_area_passes_total{area="TopicsReady"}'),
        "topic_skipped": delta('keelson_area_passes_skipped_total{area="TopicsReady"}'),
    }
    kube.run("delete", "namespace", ns, "--wait=true", timeout=timeout)
    return row


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
    parser.add_argument("--external", action="store_true", help="measure database and topic work instead")
    args = parser.parse_args()

    stack = LocalStack(args.state_dir)
    external = args.external
    stack.up(kafka=external, postgres=external, operator=True, progress=lambda m: print(f"# {m}", file=sys.stderr))
    stack.stop_operator()
    stack.start_operator()  # a fresh process, so peak RSS is this run's
    kube = Kube(stack.admin_kubeconfig)
    if external:
        rows = [run_external(stack, kube, n) for n in args.sizes]
        print(f"external work, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores")
        print(json.dumps(rows))
        return 0
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
