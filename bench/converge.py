"""bench/converge: time from `kubectl apply` of a platform to Ready, against the same objects
applied by `kubectl apply --server-side` (one at a time) and straight to the API at the
operator's concurrency (bench/direct_apply.py), with the operator's writes per converge, its
writes while idle, and its peak RSS; and the same figures for KubeVela's controller converging
the equivalent Application on the same stack (bench/kubevela.py; built and cached on first use).

    python bench/converge.py [--sizes 5 50 200] [--idle-seconds 120] [--no-kubevela] [--state-dir DIR]
    python bench/converge.py --many [--platforms 40] [--services 25] [--idle-seconds 300] [--changes 7] [--no-baselines]
    python bench/converge.py --external [--sizes 200] [--state-dir DIR]

Runs on the embedded local stack (started if needed). Prints Markdown tables.

`--external` measures the external work instead: every fifth service has a database (provider
postgres on the stack's server) and publishes an event the next one subscribes to (provider admin
on the stack's broker); the figures are the PostgreSQL connections (the server's
pg_stat_database.sessions) and Kafka admin requests (the operator's own counter) from the apply
to Ready, with the operator's count of area passes run and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import direct_apply  # noqa: E402
import kubevela  # noqa: E402
import many_platforms  # noqa: E402
import measuring  # noqa: E402
from e2e.kube import Kube, eventually, utcnow  # noqa: E402
from keelson.devstack.stack import LocalStack  # noqa: E402
from tests.cases.invalid_platforms import big_platform  # noqa: E402


def is_ready(kube: Kube, namespace: str) -> bool:
    cond = kube.condition("bench", namespace)
    return bool(cond and cond["status"] == "True")


def _plain(kube: Kube, objects: list[dict[str, Any]], namespace: str, services: int, *, direct: Path | None) -> float:
    """Apply the objects with kubectl (one at a time) or, given a kubeconfig, straight to the API."""
    start = time.monotonic()
    if direct is None:
        kube.run("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(objects), timeout=1800)
    else:
        asyncio.run(direct_apply.apply_all(objects, direct))
    return measuring.wait_available(kube, [namespace], services, start=start, timeout=60 + services * 3)


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


def run_size(
    stack: LocalStack, kube: Kube, services: int, idle_seconds: float, vela_dir: Path | None, *, vela_timeout: float
) -> dict[str, Any]:
    doc = big_platform(services, name="bench")
    timeout = 60 + services * 3
    stamp = int(time.time())
    row: dict[str, Any] = {"services": services}

    # Baselines: the same objects, no operator running (it would watch them: they carry its labels).
    stack.stop_operator()
    for column, direct in (("plain_s", None), ("direct_s", stack.admin_kubeconfig)):
        ns = f"{column.removesuffix('_s')}-{services}-{stamp}"
        objects = measuring.render(doc, [ns])
        row["objects"] = len(objects)
        measuring.create_namespaces(kube, [ns])
        row[column] = round(_plain(kube, objects, ns, services, direct=direct), 1)
        # The nodes' pod capacity holds few runs at a time: clear the baseline away first.
        measuring.delete_namespaces(kube, [ns])

    # The operator, a fresh process so that the peak RSS is this size's.
    pid = measuring.restart_operator(stack)
    ns = kube.namespace(f"op-{services}-{stamp}")
    since = utcnow()
    start = time.monotonic()
    kube.apply(ns, doc)
    eventually(lambda: is_ready(kube, ns), timeout=timeout, interval=0.25)
    row["operator_s"] = round(time.monotonic() - start, 1)
    row["writes"] = len(measuring.operator_writes(stack.audit_log, since=since, namespace=ns))
    # The Ready Event is posted just after the status flips: idle starts after it.
    eventually(lambda: any(e["reason"] == "Ready" for e in kube.list("events", ns)), timeout=30, what="the Ready event")
    namespaces = [ns]

    vela = None
    if vela_dir is not None:
        vela = kubevela.VelaCore(vela_dir, stack.admin_kubeconfig, stack.state_dir / f"vela-core-{services}.log")
        vns = kube.namespace(f"vela-{services}-{stamp}")
        namespaces.append(vns)
        vsince = utcnow()
        start = time.monotonic()
        kubevela.apply_application(kube, vns, services)
        # Not converging is a result too: recorded as the time given, not an abort of the run.
        try:
            row["vela_available_s"] = round(kubevela.wait_deployments(kube, vns, services, vela_timeout), 1)
        except AssertionError:
            row["vela_available_s"] = f"> {vela_timeout:.0f}"
        try:
            left = max(vela_timeout - (time.monotonic() - start), 1)
            eventually(lambda: kubevela.application_running(kube, vns), timeout=left, interval=0.25, what="running")
            row["vela_running_s"] = round(time.monotonic() - start, 1)
        except AssertionError:
            row["vela_running_s"] = f"> {vela_timeout:.0f}"
        row["vela_deployments"] = len(kube.list("deployments", vns))
        time.sleep(5)  # its last writes of the converge (status, revision) land in this window
        row["vela_writes"], row["vela_dry_runs"] = kubevela.writes(stack.audit_log, since=vsince)

    # One idle window for both: each one's writes, by its own identity in the audit log.
    idle_since = utcnow()
    time.sleep(idle_seconds)  # the measurement window itself
    row["idle_writes"] = len(measuring.operator_writes(stack.audit_log, since=idle_since))
    row["rss_mb"] = round(measuring.rss_peak_mb(pid), 1)
    row["ratio"] = round(row["operator_s"] / row["plain_s"], 2)
    row["ratio_direct"] = round(row["operator_s"] / row["direct_s"], 2)
    if vela is not None:
        row["vela_idle_writes"], row["vela_idle_dry_runs"] = kubevela.writes(stack.audit_log, since=idle_since)
        row["vela_rss_mb"] = round(vela.rss_peak_mb(), 1)
        # Its Application carries vela-core's finalizer: delete it while vela-core still runs.
        measuring.delete_namespaces(kube, namespaces[1:])
        vela.stop()
    measuring.delete_namespaces(kube, namespaces[:1])
    return row


def print_sizes(rows: list[dict[str, Any]], idle_seconds: float) -> None:
    print(
        "| services | objects | kubectl SSA → available (s) | direct SSA, 8 in flight → available (s) "
        "| operator → Ready (s) | ratio to kubectl | ratio to direct | operator writes per converge "
        f"| operator writes, {idle_seconds:.0f} s idle | operator peak RSS (MB) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['services']} | {r['objects']} | {r['plain_s']} | {r['direct_s']} | {r['operator_s']} | {r['ratio']} "
            f"| {r['ratio_direct']} | {r['writes']} | {r['idle_writes']} | {r['rss_mb']} |"
        )
    if any("vela_writes" in r for r in rows):
        print()
        print(
            "| services | KubeVela: Deployments available (s) | Application running (s) | Deployments created "
            "| writes per converge (+ dry runs) | writes while idle (+ dry runs) | peak RSS (MB) |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in rows:
            if "vela_writes" in r:
                print(
                    f"| {r['services']} | {r['vela_available_s']} | {r['vela_running_s']} | {r['vela_deployments']} "
                    f"| {r['vela_writes']} (+{r['vela_dry_runs']}) "
                    f"| {r['vela_idle_writes']} (+{r['vela_idle_dry_runs']}) | {r['vela_rss_mb']} |"
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 50, 200])
    parser.add_argument("--idle-seconds", type=float, default=None, help="120, or 300 with --many")
    parser.add_argument("--no-kubevela", action="store_true", help="skip the KubeVela peer")
    parser.add_argument("--vela-timeout", type=float, default=600, help="seconds KubeVela is given to converge")
    parser.add_argument("--many", action="store_true", help="the many-platforms mode")
    parser.add_argument("--no-baselines", action="store_true", help="with --many: the operator's figures only")
    parser.add_argument("--platforms", type=int, default=40)
    parser.add_argument("--services", type=int, default=25, help="per platform, with --many")
    parser.add_argument("--changes", type=int, default=7, help="single-service changes timed, with --many")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("KEELSON_BENCH_STATE_DIR", Path.home() / ".local/state/keelson/bench")),
    )
    parser.add_argument("--external", action="store_true", help="measure database and topic work instead")
    args = parser.parse_args()
    idle_seconds = args.idle_seconds if args.idle_seconds is not None else (300 if args.many else 120)

    stack = LocalStack(args.state_dir)
    external = args.external
    stack.up(kafka=external, postgres=external, operator=True, progress=lambda m: print(f"# {m}", file=sys.stderr))
    kube = Kube(stack.admin_kubeconfig)
    if external:
        stack.stop_operator()
        stack.start_operator()  # a fresh process, so peak RSS is this run's
        rows = [run_external(stack, kube, n) for n in args.sizes]
        print(f"external work, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores")
        print(json.dumps(rows))
        return 0
    measuring.add_nodes(kube)
    header = (
        f"converge benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, idle window {idle_seconds:.0f} s, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    if args.many:
        result = many_platforms.run_many(
            stack,
            kube,
            platforms=args.platforms,
            services=args.services,
            idle_seconds=idle_seconds,
            changes=args.changes,
        )
        print(header)
        print()
        many_platforms.print_many(result)
        print()
        print(json.dumps(result))
        return 0

    vela_dir = None
    if not args.no_kubevela:
        vela_dir = kubevela.ensure_built(lambda m: print(f"# {m}", file=sys.stderr))
        kubevela.install(kube, vela_dir)
    rows = []
    for n in args.sizes:
        rows.append(run_size(stack, kube, n, idle_seconds, vela_dir, vela_timeout=args.vela_timeout))
        print(f"# {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    print(header)
    print()
    print_sizes(rows, idle_seconds)
    print()
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
