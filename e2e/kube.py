"""Helpers for the cluster tests: kubectl, polling with deadlines, and the audit log."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

OPERATOR_USER = "system:serviceaccount:keelson-system:keelson-operator"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}

T = TypeVar("T")


class Kube:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            check=False,
            input=stdin,
            text=True,
            capture_output=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def apply(
        self, namespace: str, doc: dict[str, Any] | list[dict[str, Any]], *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        docs = doc if isinstance(doc, list) else [doc]
        return self.run("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs), check=check)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        proc = self.run("get", kind, name, "-n", namespace, "-o", "json", check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr:
                return None
            raise AssertionError(proc.stderr)
        return dict(json.loads(proc.stdout))

    def list(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kind, "-n", namespace, "-o", "json", "--show-managed-fields"]
        if selector:
            args += ["-l", selector]
        return list(json.loads(self.run(*args).stdout)["items"])

    def condition(self, name: str, namespace: str, ctype: str = "Ready") -> dict[str, Any] | None:
        obj = self.get("msp", name, namespace)
        for cond in (obj or {}).get("status", {}).get("conditions", []):
            if cond["type"] == ctype:
                return dict(cond)
        return None

    def namespace(self, name: str) -> str:
        self.run("create", "namespace", name)
        return name


def eventually(check: Callable[[], T | None], *, timeout: float = 60, interval: float = 0.5, what: str = "") -> T:
    """Poll until `check` returns something truthy; fail with its last value at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or check}: last value {last!r}")


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def operator_writes(audit_log: Path, *, since: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """The operator's write requests in the audit log since an RFC 3339 timestamp."""
    writes = []
    with audit_log.open() as fh:
        for line in fh:
            event = json.loads(line)
            if event.get("stage") != "ResponseComplete" or event["requestReceivedTimestamp"] < since:
                continue
            if event["user"]["username"] != OPERATOR_USER or event["verb"] not in WRITE_VERBS:
                continue
            if namespace and event.get("objectRef", {}).get("namespace") != namespace:
                continue
            writes.append(event)
    return writes


def operator_metric(metrics_port: int, name: str, **labels: str) -> float:
    """The sum of the operator's samples of ``name`` (from its /metrics) with these labels."""
    import urllib.request

    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    total = 0.0
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            sample, value = line.rsplit(" ", 1)
            if sample.split("{", 1)[0] == name and all(label in sample for label in wanted):
                total += float(value)
    return total


def idle_window(metrics_port: int, *, passes: int = 2) -> str:
    """Wait out two resync intervals and at least `passes` reconcile passes; returns when the
    window began (RFC 3339), for `operator_writes(..., since=...)`. Polled, never slept through."""
    since, started = utcnow(), time.monotonic()
    start = reconcile_count(metrics_port)
    window = 2 * float(os.environ.get("KEELSON_RESYNC_SECONDS", "60")) + 2
    eventually(
        lambda: time.monotonic() - started >= window and reconcile_count(metrics_port) >= start + passes,
        timeout=window + 120,
        interval=1,
        what=f"an idle window of {window:.0f}s and {passes} passes",
    )
    return since


def reconcile_count(metrics_port: int) -> float:
    """How many reconcile passes the operator has finished, from its /metrics."""
    return operator_metric(metrics_port, "keelson_reconcile_duration_seconds_count")


def third_party_crds() -> Path:
    """The third-party CRDs (Strimzi, CloudNativePG, ...) in shared/, which lies beside the
    repository (in CI too); KEELSON_THIRD_PARTY_CRDS points elsewhere."""
    import os

    override = os.environ.get("KEELSON_THIRD_PARTY_CRDS")
    folder = Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "crds" / "third-party"
    if not folder.is_dir():
        raise AssertionError(f"third-party CRDs not found in {folder}: set KEELSON_THIRD_PARTY_CRDS")
    return folder
