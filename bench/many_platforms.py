"""bench/converge.py --many: 40 platforms of 25 services in 40 namespaces (1,000 services,
about 7,000 objects) on one operator.

Figures: the time from applying all 40 platforms to all Ready, next to the same objects applied
by kubectl (one at a time) and straight to the API at the operator's concurrency (direct_apply);
the operator's CPU-seconds, writes and reconcile passes over an idle window; its peak RSS; and
the time from changing one service of one platform (its image) to the operator's patch of that
Deployment, from the API server's audit log, while the other 39 platforms idle.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import yaml

import direct_apply
import measuring
from e2e.kube import OPERATOR_USER, Kube, eventually, utcnow
from keelson.devstack.stack import LocalStack
from tests.cases.invalid_platforms import big_platform

PLATFORM = "bench"


def _namespaces(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:02d}" for i in range(count)]


def _plain_kubectl(kube: Kube, objects: list[dict[str, Any]], namespaces: list[str], services: int) -> float:
    measuring.create_namespaces(kube, namespaces)
    start = time.monotonic()
    kube.run("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(objects), timeout=3600)
    return measuring.wait_available(kube, namespaces, services, start=start, timeout=3600)


def _plain_direct(
    kube: Kube, stack: LocalStack, objects: list[dict[str, Any]], namespaces: list[str], services: int
) -> float:
    measuring.create_namespaces(kube, namespaces)
    start = time.monotonic()
    asyncio.run(direct_apply.apply_all(objects, stack.admin_kubeconfig))
    return measuring.wait_available(kube, namespaces, services, start=start, timeout=3600)


def _change_latencies(
    stack: LocalStack, kube: Kube, namespaces: list[str], changes: int, services: int
) -> list[dict[str, Any]]:
    """Change one service's image in one platform at a time; wait for it to land; then read the
    audit log for the time from the platform's patch to the operator's patch of the Deployment."""
    since = utcnow()
    done = []
    for k in range(changes):
        ns = namespaces[(k * 7) % len(namespaces)]
        index = (k * 3) % services
        svc = f"svc-{index:03d}"
        image = f"registry.example/app:{k + 2}"
        patch = [{"op": "replace", "path": f"/spec/services/{index}/image", "value": image}]
        start = time.monotonic()
        kube.run("patch", "msp", PLATFORM, "-n", ns, "--type=json", "-p", json.dumps(patch))

        def landed(ns: str = ns, svc: str = svc, image: str = image) -> bool:
            dep = kube.get("deployment", svc, ns) or {}
            return any(
                c.get("image") == image
                for c in dep.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
            )

        eventually(landed, timeout=60, interval=0.1, what=f"{ns}/{svc} at {image}")
        done.append({"namespace": ns, "service": svc, "polled_s": round(time.monotonic() - start, 2)})
        time.sleep(3)
    events = measuring.audit_events(stack.audit_log, since=since)
    for change in done:
        ref = (change["namespace"], change["service"])
        edit = next(
            e for e in events
            if e["verb"] == "patch" and e["user"]["username"] != OPERATOR_USER
            and e.get("objectRef", {}).get("resource") == "microserviceplatforms"
            and e["objectRef"].get("namespace") == ref[0]
        )  # fmt: skip
        applied = next(
            e for e in events
            if e["verb"] == "patch" and e["user"]["username"] == OPERATOR_USER
            and e.get("objectRef", {}).get("resource") == "deployments"
            and (e["objectRef"].get("namespace"), e["objectRef"].get("name")) == ref
            and e["requestReceivedTimestamp"] >= edit["stageTimestamp"]
        )  # fmt: skip
        seconds = measuring.timestamp(applied["stageTimestamp"]) - measuring.timestamp(edit["stageTimestamp"])
        change["audit_s"] = round(seconds.total_seconds(), 3)
        events.remove(edit)
    return done


def run_many(
    stack: LocalStack,
    kube: Kube,
    *,
    platforms: int,
    services: int,
    idle_seconds: float,
    changes: int,
    baselines: bool = True,
) -> dict[str, Any]:
    doc = big_platform(services, name=PLATFORM)
    total = platforms * services
    stamp = int(time.time())
    measuring.add_nodes(kube)
    # The baselines run with the operator stopped: its watches would see their objects (they carry
    # Keelson's labels) and the baselines would pay for its CPU.
    stack.stop_operator()
    result: dict[str, Any] = {"platforms": platforms, "services": total}

    result["objects"] = len(measuring.render(doc, _namespaces("count", platforms)))
    result["kubectl_s"] = result["direct_s"] = None
    if baselines:
        ns = _namespaces(f"many-kubectl-{stamp}", platforms)
        objects = measuring.render(doc, ns)
        result["kubectl_s"] = round(_plain_kubectl(kube, objects, ns, total), 1)
        print(f"# kubectl baseline {result['kubectl_s']} s", flush=True)
        measuring.delete_namespaces(kube, ns)

        ns = _namespaces(f"many-direct-{stamp}", platforms)
        objects = measuring.render(doc, ns)
        result["direct_s"] = round(_plain_direct(kube, stack, objects, ns, total), 1)
        print(f"# direct baseline {result['direct_s']} s", flush=True)
        measuring.delete_namespaces(kube, ns)

    pid = measuring.restart_operator(stack)
    ns = _namespaces(f"many-op-{stamp}", platforms)
    nsset = set(ns)
    measuring.create_namespaces(kube, ns)
    cpu0 = measuring.cpu_seconds(pid)
    since = utcnow()
    start = time.monotonic()
    docs = [{**doc, "metadata": {"name": PLATFORM, "namespace": n}} for n in ns]
    kube.run("apply", "-f", "-", stdin=yaml.safe_dump_all(docs), timeout=600)
    eventually(
        lambda: measuring.ready_platforms(kube, nsset) == platforms, timeout=3600, interval=1.0, what="all Ready"
    )
    result["operator_s"] = round(time.monotonic() - start, 1)
    result["converge_cpu_s"] = round(measuring.cpu_seconds(pid) - cpu0, 1)
    print(f"# operator {result['operator_s']} s", flush=True)
    eventually(lambda: measuring.ready_events(kube, nsset) == platforms, timeout=120, interval=1.0, what="Ready events")
    result["writes"] = len(measuring.operator_writes(stack.audit_log, since=since))

    # Idle: every platform Ready, nothing changes; resyncs every 60 s reconcile all 40.
    time.sleep(5)  # the last status writes' watch events
    idle_since = utcnow()
    cpu0 = measuring.cpu_seconds(pid)
    passes0 = measuring.operator_metric(stack, "keelson_reconcile_duration_seconds_count")
    pass_s0 = measuring.operator_metric(stack, "keelson_reconcile_duration_seconds_sum")
    time.sleep(idle_seconds)  # the measurement window itself
    idle_cpu = measuring.cpu_seconds(pid) - cpu0
    passes = measuring.operator_metric(stack, "keelson_reconcile_duration_seconds_count") - passes0
    pass_s = measuring.operator_metric(stack, "keelson_reconcile_duration_seconds_sum") - pass_s0
    result["idle_seconds"] = idle_seconds
    result["idle_writes"] = len(measuring.operator_writes(stack.audit_log, since=idle_since))
    result["idle_cpu_s"] = round(idle_cpu, 2)
    result["idle_core_pct"] = round(100 * idle_cpu / idle_seconds, 2)
    result["idle_passes"] = int(passes)
    result["idle_pass_ms"] = round(1000 * pass_s / passes, 1) if passes else None
    print(f"# idle {json.dumps({k: v for k, v in result.items() if k.startswith('idle')})}", flush=True)

    result["changes"] = _change_latencies(stack, kube, ns, changes, services)
    audit = [c["audit_s"] for c in result["changes"]]
    polled = [c["polled_s"] for c in result["changes"]]
    result["change_p50_s"] = round(statistics.median(audit), 3)
    result["change_max_s"] = round(max(audit), 3)
    result["change_polled_p50_s"] = round(statistics.median(polled), 2)
    result["rss_mb"] = round(measuring.rss_peak_mb(pid), 1)
    result["ratio_kubectl"] = round(result["operator_s"] / result["kubectl_s"], 2) if baselines else None
    result["ratio_direct"] = round(result["operator_s"] / result["direct_s"], 2) if baselines else None
    measuring.delete_namespaces(kube, ns)
    return result


def print_many(r: dict[str, Any]) -> None:
    print(
        "| platforms x services | objects | kubectl SSA → available (s) | direct SSA, 8 in flight → available (s) "
        "| operator → all Ready (s) | ratio to kubectl | ratio to direct | operator writes per converge "
        "| operator CPU during converge (s) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {r['platforms']} x {r['services'] // r['platforms']} | {r['objects']} | {r['kubectl_s']} | {r['direct_s']} "
        f"| {r['operator_s']} | {r['ratio_kubectl']} | {r['ratio_direct']} | {r['writes']} | {r['converge_cpu_s']} |"
    )
    print()
    print(
        "| idle window (s) | idle writes | idle CPU (s) | share of a core | reconcile passes | mean pass (ms) "
        "| peak RSS (MB) | change → applied, p50 / max (s, audit log) | p50 polled by kubectl (s) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    print(
        f"| {r['idle_seconds']:.0f} | {r['idle_writes']} | {r['idle_cpu_s']} | {r['idle_core_pct']} % "
        f"| {r['idle_passes']} | {r['idle_pass_ms']} | {r['rss_mb']} "
        f"| {r['change_p50_s']} / {r['change_max_s']} ({len(r['changes'])} changes) | {r['change_polled_p50_s']} |"
    )
