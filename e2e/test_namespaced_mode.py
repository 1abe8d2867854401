"""Namespaced mode on the real API server: the chart's RBAC with operator.watchNamespaces=[a, b],
installed as a release of its own (its own ServiceAccount, so the stack's cluster-mode operator keeps
its permissions), and a second operator from this working tree running as that ServiceAccount with
`--namespace a --namespace b`. A platform in a goes Ready; one in c stays untouched; RBAC refuses
that account Secrets in c and anywhere cluster-wide; and the audit log shows it asked for nothing it
was not granted.

The stack's own operator reconciles every namespace, so it is stopped while this runs: whatever
happens to the platforms then is the namespaced operator's doing (the audit log agrees: it tells
the two accounts apart).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from e2e import permissions
from e2e.kube import Kube, eventually, reconcile_count, utcnow
from e2e.permissions import NON_RESOURCE
from keelson.devstack import ports, processes
from keelson.devstack.building import binary_paths
from keelson.devstack.kubeconfig import render_kubeconfig, write_private
from keelson.devstack.paths import repo_root
from keelson.devstack.probes import http_health
from keelson.devstack.stack import LocalStack, default_chart
from keelson.devstack.versions import KUBERNETES_VERSION
from tests.cases.invalid_platforms import workloads_example

pytestmark = pytest.mark.cluster

RELEASE = "keelson-ns"
ACCOUNT = "keelson-ns-operator"
PROCESS = "operator-namespaced"  # its log: <state>/logs/operator-namespaced.log
_counter = itertools.count()


def _render(release_namespace: str, watched: list[str]) -> list[dict[str, Any]]:
    args = [
        str(binary_paths()["helm"]), "template", RELEASE, str(default_chart()),
        "--namespace", release_namespace, "--kube-version", KUBERNETES_VERSION,
        "--set", "operator.deploy=false", "--set", f"serviceAccount.name={ACCOUNT}",
        "--set", f"operator.watchNamespaces={{{','.join(watched)}}}",
    ]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if isinstance(d, dict)]


class NamespacedOperator:
    """The working tree's operator as the release's ServiceAccount, under a name, log and ports
    of its own beside the stack's operator."""

    def __init__(self, stack: LocalStack, kube: Kube, release_namespace: str, watched: list[str]) -> None:
        self.stack = stack
        self.metrics_port, self.health_port = ports.free_port(), ports.free_port()
        token = kube.run("create", "token", ACCOUNT, "-n", release_namespace, "--duration=1h").stdout.strip()
        self.kubeconfig = stack.state_dir / f"{PROCESS}.kubeconfig"
        write_private(
            self.kubeconfig,
            render_kubeconfig(
                server=stack.apiserver_url,
                ca_pem=stack.pki.ca.cert.read_bytes(),
                user=permissions.account(release_namespace, ACCOUNT),
                token=token,
            ),
        )
        self.argv = [sys.executable, "-m", "keelson", "operator", "run"]
        self.argv += ["--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port)]
        for namespace in watched:
            self.argv += ["--namespace", namespace]

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE_")}
        env.update(KUBECONFIG=str(self.kubeconfig), PYTHONUNBUFFERED="1", KEELSON_RESYNC_SECONDS="5")
        processes.start(self.stack.state_dir, PROCESS, self.argv, env=env, cwd=repo_root())
        eventually(
            self._healthy,
            timeout=90,
            what=f"the namespaced operator healthy (log: {processes.log_path(self.stack.state_dir, PROCESS)})",
        )

    def _healthy(self) -> bool:
        assert processes.alive(self.stack.state_dir, PROCESS), processes.log_tail(self.stack.state_dir, PROCESS)
        return http_health(f"http://127.0.0.1:{self.health_port}/healthz").ok

    def stop(self) -> None:
        processes.stop(self.stack.state_dir, PROCESS, timeout=30)


@pytest.fixture
def namespaces(kube: Kube) -> Iterator[dict[str, str]]:
    suffix = f"{os.getpid() % 10000}-{next(_counter)}"
    names = {key: kube.namespace(f"nsmode-{key}-{suffix}") for key in ("release", "a", "b", "c")}
    yield names
    kube.run("delete", "namespace", *names.values(), "--wait=false", check=False)


def _install(kube: Kube, docs: list[dict[str, Any]]) -> None:
    # Not `apply -n`: the Roles name their namespaces, which kubectl refuses to override.
    kube.run("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))


def _can_i(kube: Kube, user: str, *args: str) -> str:
    proc = kube.run("auth", "can-i", *args, f"--as={user}", check=False)
    return proc.stdout.strip()


def test_namespaced_mode_reconciles_only_its_namespaces(
    kube: Kube, stack: LocalStack, namespaces: dict[str, str]
) -> None:
    a, b, c = namespaces["a"], namespaces["b"], namespaces["c"]
    docs = _render(namespaces["release"], [a, b])
    user = permissions.account(namespaces["release"], ACCOUNT)
    cluster_scoped = [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    _install(kube, docs)
    since = utcnow()
    operator = NamespacedOperator(stack, kube, namespaces["release"], [a, b])
    stack.stop_operator()
    try:
        operator.start()
        kube.apply(a, workloads_example())
        kube.apply(c, workloads_example())
        eventually(lambda: (kube.condition("shop", a) or {}).get("status") == "True", timeout=120, what="Ready in a")
        # Two more passes of its resync (every 5 s) after that: time enough to have touched c.
        passes = reconcile_count(operator.metrics_port)
        eventually(lambda: reconcile_count(operator.metrics_port) >= passes + 2, timeout=60, what="two resyncs")
        assert "status" not in (kube.get("msp", "shop", c) or {}), "the platform in c got a status"
        assert kube.list("deployments", c) == []
    finally:
        operator.stop()
        stack.start_operator()
        kube.run("delete", "-f", "-", stdin=yaml.safe_dump_all(cluster_scoped), check=False)

    found = permissions.usage(stack.audit_log, user=user, since=since)
    assert [permissions.denial(e) for e in found.denied] == []
    grants = permissions.granted(docs, namespace=namespaces["release"], name=ACCOUNT)
    assert permissions.ungranted(grants, found.uses) == []
    outside = sorted(
        {(u.verb, u.resource, u.namespace) for u in found.uses if u.namespace not in (a, b) and u.group != NON_RESOURCE}
    )
    # Cluster-wide, it only read CRDs and Namespaces (kopf's discovery) and the published
    # ComponentDefinitions (cluster-scoped), and it never looked into c.
    cluster_reads = {"customresourcedefinitions", "namespaces", "componentdefinitions"}
    assert {resource for _, resource, _ in outside} <= cluster_reads, outside
    assert any(u.namespace == a and u.verb == "patch" for u in found.uses), "no write of its own in a"


def test_namespaced_rbac_refuses_secrets_outside_its_namespaces(kube: Kube, namespaces: dict[str, str]) -> None:
    a, c = namespaces["a"], namespaces["c"]
    docs = _render(namespaces["release"], [a, namespaces["b"]])
    _install(kube, docs)
    user = permissions.account(namespaces["release"], ACCOUNT)
    try:
        # Granted where it works, so the refusals below are RBAC's answer and not a broken check.
        assert _can_i(kube, user, "get", "secrets", "-n", a) == "yes"
        assert _can_i(kube, user, "patch", "deployments.apps", "-n", a) == "yes"
        assert _can_i(kube, user, "get", "secrets", "-n", c) == "no"
        assert _can_i(kube, user, "list", "secrets", "--all-namespaces") == "no"
        assert _can_i(kube, user, "list", "deployments.apps", "--all-namespaces") == "no"
        assert _can_i(kube, user, "list", "microserviceplatforms.keelson.dev", "-n", c) == "no"
    finally:
        cluster_scoped = [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
        kube.run("delete", "-f", "-", stdin=yaml.safe_dump_all(cluster_scoped), check=False)
