"""bench/converge: time from `kubectl apply` of a platform to Ready, against the same objects
applied by `kubectl apply --server-side` (one at a time) and straight to the API at the
operator's concurrency (bench/direct_apply.py), with the operator's writes per converge, its
writes while idle, and its peak RSS; and the same figures for KubeVela's controller converging
the equivalent Application on the same stack (bench/kubevela.py; built and cached on first use).

    python bench/converge.py [--sizes 5 50 200] [--idle-seconds 120] [--no-baselines] [--state-dir DIR]
        [--no-kubevela | --vela-apps equal webservice] [--vela-timeout 600] [--vela-arg=--flag=value ...]
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
from collections import Counter
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


VELA_APPS = ("equal", "webservice")


def run_vela(
    stack: LocalStack,
    kube: Kube,
    vela_dir: Path,
    kind: str,
    doc: dict[str, Any],
    *,
    stamp: int,
    idle_seconds: float,
    timeout: float,
    extra_args: tuple[str, ...],
) -> dict[str, Any]:
    """One fresh vela-core converging one Application (``equal`` or ``webservice``), then idle."""
    services = len(doc["spec"]["services"])
    vns = kube.namespace(f"vela-{kind}-{services}-{stamp}")
    if kind == "equal":
        app = kubevela.equal_work_application(measuring.render(doc, [vns]))
    else:
        app = kubevela.application(services)
    log = stack.state_dir / f"vela-core-{kind}-{services}.log"
    vela = kubevela.VelaCore(vela_dir, stack.admin_kubeconfig, log, extra_args)
    out: dict[str, Any] = {"app": kind, "objects": kubevela.application_objects(app)}
    try:
        since = utcnow()
        kubevela.apply_application(kube, vns, app)
        # Not converging is a result too: recorded as such, not an abort of the run.
        out.update(kubevela.wait_converged(kube, vns, services, timeout))
        out["deployments"] = len(kube.list("deployments", vns))
        time.sleep(5)  # its last writes of the converge (status, revision) land in this window
        idle_since = utcnow()
        out["writes"], out["dry_runs"], by = kubevela.write_breakdown(stack.audit_log, since=since, until=idle_since)
        out["writes_by"] = dict(by.most_common())
        time.sleep(idle_seconds)  # the idle window itself
        out["idle_writes"], out["idle_dry_runs"], idle_by = kubevela.write_breakdown(stack.audit_log, since=idle_since)
        out["idle_writes_by"] = dict(idle_by.most_common())
        out["rss_mb"] = round(vela.rss_peak_mb(), 1)
        out["cpu_s"] = round(vela.cpu_seconds(), 1)
        # Its Application carries vela-core's finalizer: delete it while vela-core still runs.
        measuring.delete_namespaces(kube, [vns])
    finally:
        vela.stop()
    return out


def run_size(
    stack: LocalStack,
    kube: Kube,
    services: int,
    idle_seconds: float,
    vela_dir: Path | None,
    *,
    vela_apps: tuple[str, ...] = VELA_APPS,
    vela_timeout: float,
    vela_args: tuple[str, ...] = (),
    baselines: bool = True,
) -> dict[str, Any]:
    doc = big_platform(services, name="bench")
    timeout = 60 + services * 3
    stamp = int(time.time())
    row: dict[str, Any] = {"services": services, "load_start": round(os.getloadavg()[0], 1)}

    # Baselines: the same objects, no operator running (it would watch them: they carry its labels).
    if baselines:
        stack.stop_operator()
        for column, direct in (("plain_s", None), ("direct_s", stack.admin_kubeconfig)):
            ns = f"{column.removesuffix('_s')}-{services}-{stamp}"
            objects = measuring.render(doc, [ns])
            measuring.create_namespaces(kube, [ns])
            row[column] = round(_plain(kube, objects, ns, services, direct=direct), 1)
            # The nodes' pod capacity holds few runs at a time: clear the baseline away first.
            measuring.delete_namespaces(kube, [ns])

    # The operator, a fresh process so that the peak RSS is this size's.
    pid = measuring.restart_operator(stack)
    ns = kube.namespace(f"op-{services}-{stamp}")
    row["objects"] = len(measuring.render(doc, [ns]))
    since = utcnow()
    start = time.monotonic()
    kube.apply(ns, doc)
    eventually(lambda: is_ready(kube, ns), timeout=timeout, interval=0.25)
    row["operator_s"] = round(time.monotonic() - start, 1)
    # The Ready Event is posted just after the status flips: it belongs to the converge.
    eventually(lambda: any(e["reason"] == "Ready" for e in kube.list("events", ns)), timeout=30, what="the Ready event")
    idle_since, idle_start = utcnow(), time.monotonic()
    writes = measuring.operator_writes(stack.audit_log, since=since, namespace=ns)
    row["writes"] = len(writes)
    row["writes_by"] = dict(Counter(measuring.resource_key(w) for w in writes).most_common())
    row["cpu_s"] = round(measuring.cpu_seconds(pid), 1)
    if baselines:
        row["ratio"] = round(row["operator_s"] / row["plain_s"], 2)
        row["ratio_direct"] = round(row["operator_s"] / row["direct_s"], 2)

    # KubeVela, one fresh vela-core per Application, while the operator idles with its platform.
    row["vela"] = []
    for kind in vela_apps if vela_dir is not None else ():
        assert vela_dir is not None
        result = run_vela(
            stack,
            kube,
            vela_dir,
            kind,
            doc,
            stamp=stamp,
            idle_seconds=idle_seconds,
            timeout=vela_timeout,
            extra_args=vela_args,
        )
        row["vela"].append(result)
        print(f"# {json.dumps(result)}", file=sys.stderr, flush=True)
    rest = idle_seconds - (time.monotonic() - idle_start)
    if rest > 0:
        time.sleep(rest)  # the operator's idle window is at least as long as KubeVela's
    # The operator's idle window: from its Ready Event to now, all of KubeVela's runs included.
    row["idle_s"] = round(time.monotonic() - idle_start)
    row["idle_writes"] = len(measuring.operator_writes(stack.audit_log, since=idle_since))
    row["rss_mb"] = round(measuring.rss_peak_mb(pid), 1)
    row["load_end"] = round(os.getloadavg()[0], 1)
    measuring.delete_namespaces(kube, [ns])
    return row


def _per_object(writes: int, objects: int) -> str:
    return f"{writes / objects:.2f}" if objects else "-"


def _seconds(value: float | None, timeout: float) -> str:
    return f"{value}" if value is not None else f"> {timeout:.0f}"


def print_sizes(rows: list[dict[str, Any]], idle_seconds: float, vela_timeout: float) -> None:
    if any("plain_s" in r for r in rows):
        print(
            "| services | objects | kubectl SSA → available (s) | direct SSA, 8 in flight → available (s) "
            "| operator → Ready (s) | ratio to kubectl | ratio to direct |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in rows:
            if "plain_s" in r:
                print(
                    f"| {r['services']} | {r['objects']} | {r['plain_s']} | {r['direct_s']} | {r['operator_s']} "
                    f"| {r['ratio']} | {r['ratio_direct']} |"
                )
        print()
    print(
        "| services | controller | objects | → all available and Ready / running (s) | writes per converge "
        "(+ dry runs) | writes per object | idle writes (+ dry runs) | idle window (s) | peak RSS (MB) |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['services']} | Keelson | {r['objects']} | {r['operator_s']} | {r['writes']} "
            f"| {_per_object(r['writes'], r['objects'])} | {r['idle_writes']} | {r['idle_s']} | {r['rss_mb']} |"
        )
        for v in r["vela"]:
            ready = _seconds(v["ready_s"], vela_timeout)
            available, running = _seconds(v["available_s"], vela_timeout), _seconds(v["running_s"], vela_timeout)
            detail = f"{ready} (available {available}, running {running})"
            print(
                f"| {r['services']} | KubeVela, {v['app']} | {v['objects']} | {detail} "
                f"| {v['writes']} (+{v['dry_runs']}) | {_per_object(v['writes'], v['objects'])} "
                f"({_per_object(v['writes'] + v['dry_runs'], v['objects'])} with dry runs) "
                f"| {v['idle_writes']} (+{v['idle_dry_runs']}) | {idle_seconds:.0f} | {v['rss_mb']} |"
            )
    print()
    for r in rows:
        print(f"{r['services']} services, Keelson's writes per converge: {r['writes_by']}")
        for v in r["vela"]:
            print(f"{r['services']} services, KubeVela {v['app']}'s writes per converge: {v['writes_by']}")
            print(f"{r['services']} services, KubeVela {v['app']}'s idle writes: {v['idle_writes_by']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 50, 200])
    parser.add_argument("--idle-seconds", type=float, default=None, help="120, or 300 with --many")
    parser.add_argument("--no-kubevela", action="store_true", help="skip the KubeVela peer")
    parser.add_argument(
        "--vela-apps",
        nargs="+",
        choices=VELA_APPS,
        default=list(VELA_APPS),
        help="KubeVela Applications to converge: equal (Keelson's objects as k8s-objects), webservice (3 per service)",
    )
    parser.add_argument("--vela-timeout", type=float, default=600, help="seconds KubeVela is given to converge")
    parser.add_argument(
        "--vela-arg", action="append", default=[], help="an extra vela-core flag (e.g. --vela-arg=--feature-gates=...)"
    )
    parser.add_argument("--many", action="store_true", help="the many-platforms mode")
    parser.add_argument("--no-baselines", action="store_true", help="no kubectl and direct-apply baselines")
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
        row = run_size(
            stack,
            kube,
            n,
            idle_seconds,
            vela_dir,
            vela_apps=tuple(args.vela_apps),
            vela_timeout=args.vela_timeout,
            vela_args=tuple(args.vela_arg),
            baselines=not args.no_baselines,
        )
        rows.append(row)
        print(f"# {json.dumps(row)}", file=sys.stderr, flush=True)
    print(header)
    print()
    print_sizes(rows, idle_seconds, args.vela_timeout)
    print()
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
