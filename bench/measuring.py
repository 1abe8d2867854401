"""What bench/converge.py measures on the local stack: rendered objects, waits on many
namespaces at once, the operator process's CPU and memory, the audit log's timestamps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from e2e.kube import OPERATOR_USER, WRITE_VERBS, Kube, eventually
from keelson.devstack import cluster
from keelson.devstack.stack import LocalStack

_PLACEHOLDER = "bench-namespace-placeholder"
# 3 kwok nodes hold 330 pods; the many-platforms mode runs 1,000. Nodes cost nothing on kwok.
MANY_NODES = 12


def render(doc: dict[str, Any], namespaces: Iterable[str]) -> list[dict[str, Any]]:
    """``keelson render`` of one platform, once, for each namespace (the name is the only change)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        yaml.safe_dump(doc, fh)
    text = subprocess.run(
        [sys.executable, "-m", "keelson", "render", "-f", fh.name, "-n", _PLACEHOLDER],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    os.unlink(fh.name)
    return [d for ns in namespaces for d in yaml.safe_load_all(text.replace(_PLACEHOLDER, ns)) if d]


def add_nodes(kube: Kube, count: int = MANY_NODES) -> None:
    kube.run("apply", "-f", "-", stdin=cluster.nodes_yaml(count))
    eventually(
        lambda: len(cluster.ready_nodes(json.loads(kube.run("get", "nodes", "-o", "json").stdout))) >= count,
        timeout=120,
        what=f"{count} kwok nodes Ready",
    )


def all_available(kube: Kube, namespaces: Iterable[str], expected: int) -> bool:
    """Every Deployment of the namespaces available. Reads the server-side table (NAMESPACE NAME
    READY UP-TO-DATE AVAILABLE AGE), not the objects: a list of 1,000 Deployments as JSON costs
    the two cores more than the thing measured."""
    names = set(namespaces)
    table = kube.run("get", "deployments", "-A", "--no-headers", timeout=120).stdout
    rows = [line.split() for line in table.splitlines()]
    ours = [row for row in rows if row and row[0] in names]
    if len(ours) != expected:
        return False
    for row in ours:
        desired = int(row[2].partition("/")[2])
        if not desired >= 1 or int(row[4]) < desired:
            return False
    return True


def wait_available(kube: Kube, namespaces: Iterable[str], expected: int, *, start: float, timeout: float) -> float:
    """Seconds from ``start`` (a monotonic time) until every Deployment is available."""
    names = list(namespaces)
    interval = 0.25 if expected <= 200 else 1.0  # a list of 1,000 Deployments is not free either
    eventually(lambda: all_available(kube, names, expected), timeout=timeout, interval=interval, what="Deployments")
    return time.monotonic() - start


def ready_platforms(kube: Kube, namespaces: set[str]) -> int:
    items = json.loads(kube.run("get", "msp", "-A", "-o", "json", timeout=120).stdout)["items"]
    ready = 0
    for p in items:
        if p["metadata"]["namespace"] not in namespaces:
            continue
        conds = p.get("status", {}).get("conditions", [])
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
            ready += 1
    return ready


def ready_events(kube: Kube, namespaces: set[str]) -> int:
    items = json.loads(kube.run("get", "events", "-A", "--field-selector", "reason=Ready", "-o", "json").stdout)
    return len({e["metadata"]["namespace"] for e in items["items"] if e["metadata"]["namespace"] in namespaces})


def delete_namespaces(kube: Kube, namespaces: list[str], timeout: float = 1200) -> float:
    start = time.monotonic()
    if namespaces:
        kube.run("delete", "namespace", *namespaces, "--wait=true", timeout=timeout)
    return time.monotonic() - start


def create_namespaces(kube: Kube, namespaces: list[str]) -> None:
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces]
    kube.run("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))


# --- the operator process -----------------------------------------------------------------------


def operator_pid(stack: LocalStack) -> int:
    return int(json.loads((stack.state_dir / "pids" / "operator.pid").read_text())["pid"])


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def restart_operator(stack: LocalStack) -> int:
    """A fresh operator process, so that its peak RSS is this run's; its pid."""
    stack.stop_operator()
    stack.start_operator()
    time.sleep(5)  # as for vela-core: its watches list before anything is timed
    return operator_pid(stack)


def operator_metric(stack: LocalStack, name: str) -> float:
    port = stack.ports["operator-metrics"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{}"):
                return float(line.split()[-1])
    return 0.0


# --- the audit log ----------------------------------------------------------------------------


def audit_files(audit_log: Path) -> list[Path]:
    """The audit log and its rotated backups, oldest first: the API server rotates it at 200 MB
    (``audit-<time>.log`` beside it), and a 7,000-object run crosses that."""
    return [*sorted(audit_log.parent.glob(f"{audit_log.stem}-*{audit_log.suffix}")), audit_log]


def audit_events(audit_log: Path, *, since: str) -> list[dict[str, Any]]:
    out = []
    for path in audit_files(audit_log):
        with path.open() as fh:
            for line in fh:
                event = json.loads(line)
                if event.get("stage") == "ResponseComplete" and event["requestReceivedTimestamp"] >= since:
                    out.append(event)
    return out


def operator_writes(audit_log: Path, *, since: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """e2e.kube.operator_writes over the rotated backups too."""
    return [
        e
        for e in audit_events(audit_log, since=since)
        if e["user"]["username"] == OPERATOR_USER
        and e["verb"] in WRITE_VERBS
        and (namespace is None or e.get("objectRef", {}).get("namespace") == namespace)
    ]


def resource_key(event: dict[str, Any]) -> str:
    """``verb resource[/subresource]`` of an audit event: what a write was."""
    ref = event.get("objectRef") or {}
    sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
    return f"{event['verb']} {ref.get('resource', '?')}{sub}"


def timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
