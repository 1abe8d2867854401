"""`helm upgrade` from the previous release with a live platform: the chart and operator of 0.1.0
(commit 95ed66f, taken from the repository's history) bring a platform to Ready; then the chart
is upgraded to the working tree's and the operator replaced by the working tree's, as the
Deployment's Recreate strategy replaces its pod. Not one write reaches the platform's children,
during the upgrade or after it, until the new operator has reconciled the platform and resynced
it: an operator upgrade alone rolls nothing (the reference image is pinned apart from the
operator's image), and the CRD the 0.1.0 chart installed from crds/ is taken over and upgraded.
The one exception is the short list of rendering changes since 0.1.0 that docs/CHANGELOG.md
names (`DOCUMENTED_CHANGES`): each object on it is written once, and nothing else is.

The operators run as processes of the stack (kwok runs no containers), as the chart's
ServiceAccount, with the env the chart's Deployment gives them; the previous one from its own
source, first on the venv's path."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest

from e2e import helm
from e2e.kube import Kube, eventually, operator_writes, reconcile_count, utcnow
from keelson.api.crd import CRD_NAME, SCHEMA_DIGEST_ANNOTATION, custom_resource_definition
from keelson.controller.crdcheck import CRD_CURRENT
from keelson.devstack import processes
from keelson.devstack.ports import free_port
from keelson.devstack.stack import LocalStack
from tests.cases.invalid_platforms import workloads_example

pytestmark = pytest.mark.cluster

PREVIOUS = "95ed66f"  # the chart and operator released as 0.1.0
OLD, NEW = "upgrade-operator-previous", "upgrade-operator-new"
# Rendering changes since 0.1.0 that reach a live platform on upgrade, each in docs/CHANGELOG.md.
SERVICES = ("gateway", "users", "orders", "payments", "notifications")
DOCUMENTED_CHANGES = {
    "ingresses/shop-gateway": "the public route carries /api only, not / (issue 11)",
    # Issue 11: the gateway's KEELSON_GATEWAY_TRUSTED_PROXIES, derived from the route; and on every
    # service who may call it (KEELSON_ALLOWED_CALLERS, the issuer's keys) and, on those that call
    # others, the projected ServiceAccount tokens they prove themselves with.
    **{f"configmaps/{name}-config": "callers policy (and the gateway's trusted proxies)" for name in SERVICES},
    **{f"deployments/{name}": "its config checksum, and call-token volumes on callers" for name in SERVICES},
}
ROLLED_BY_CHANGES = set(SERVICES)  # Deployments the changes roll


@pytest.fixture(scope="module")
def previous() -> Iterator[Path]:
    """The previous release's chart and sources, extracted from the repository's history."""
    archive = subprocess.run(
        ["git", "-C", str(helm.ROOT), "archive", "--format=tar", PREVIOUS, "charts/keelson", "operator", "services"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert archive.returncode == 0, f"commit {PREVIOUS} not in this clone (a shallow one?): {archive.stderr!r}"
    with tempfile.TemporaryDirectory(prefix="keelson-previous-") as directory:
        with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
            tar.extractall(directory, filter="data")
        yield Path(directory)


def _env(chart: Path, *, values: dict[str, str] | None = None) -> dict[str, str]:
    """The operator container's env as the chart renders it; resyncs every 10 s, as in the other tests."""
    pod = helm.deployment(helm.render(chart, helm.release_values(chart, values)))["spec"]["template"]["spec"]
    return {**helm.container_env(pod), "KEELSON_RESYNC_SECONDS": os.environ.get("KEELSON_RESYNC_SECONDS", "10")}


def _install_previous_crd(kube: Kube, previous: Path) -> None:
    """The CRD as 0.1.0 installed it (crds/, no digest): the stack's, downgraded in place (deleting
    it would delete every platform of the stack)."""
    crd = previous / "charts" / "keelson" / "crds" / "keelson.dev_microserviceplatforms.yaml"
    kube.run("apply", "--server-side", "--force-conflicts", "--field-manager=keelson-dev", "-f", str(crd))
    kube.run("annotate", "crd", CRD_NAME, f"{SCHEMA_DIGEST_ANNOTATION}-")


def _children(kube: Kube, namespace: str) -> dict[str, tuple[int, str]]:
    """Each Deployment's generation and image: a roll would change both."""
    return {
        d["metadata"]["name"]: (d["metadata"]["generation"], d["spec"]["template"]["spec"]["containers"][0]["image"])
        for d in kube.list("deployment", namespace, "app.kubernetes.io/managed-by=keelson")
    }


def _passes_after(port: int, floor: float) -> float | None:
    try:
        count = reconcile_count(port)
    except OSError:
        return None
    return count if count > floor else None


def _child_writes(stack: LocalStack, since: str, namespace: str) -> list[str]:
    """The operator's writes to the namespace other than the platform's status: "verb resource/name"."""
    writes = operator_writes(stack.audit_log, since=since, namespace=namespace)
    refs = [(w["verb"], w["objectRef"]) for w in writes]
    return [
        f"{verb} {ref['resource']}/{ref.get('name')}"
        for verb, ref in refs
        if ref["resource"] != "microserviceplatforms"
    ]


def test_helm_upgrade_from_the_previous_release_writes_nothing_to_a_live_platform(
    stack: LocalStack, kube: Kube, namespace: str, previous: Path, tmp_path: Path
) -> None:
    old_chart, old_source = previous / "charts" / "keelson", previous / "operator"
    old_env, new_env = _env(old_chart), _env(helm.CHART)
    # The operator's image changes with the chart's appVersion; the reference services' does not.
    assert old_env["KEELSON_REFERENCE_IMAGE"] == new_env["KEELSON_REFERENCE_IMAGE"]
    old_image = helm.deployment(helm.render(old_chart))["spec"]["template"]["spec"]["containers"][0]["image"]
    assert old_image != helm.deployment(helm.render())["spec"]["template"]["spec"]["containers"][0]["image"]
    kubeconfig = helm.operator_kubeconfig(stack, tmp_path / "operator.kubeconfig")
    old_ports, new_ports = (free_port(), free_port()), (free_port(), free_port())
    path = f"{old_source}{os.pathsep}{previous / 'services'}"
    # The previous operator is that commit's code, not the working tree's installed in the venv.
    imported = subprocess.run(
        [sys.executable, "-c", "import keelson.controller; print(keelson.controller.__file__)"],
        env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert imported.startswith(str(old_source)), imported

    stack.stop_operator()
    try:
        _install_previous_crd(kube, previous)
        helm.install(stack, old_chart)
        helm.start_local_operator(stack, OLD, env=old_env, ports=old_ports, kubeconfig=kubeconfig, pythonpath=path)
        kube.apply(namespace, workloads_example())
        eventually(lambda: (kube.condition("shop", namespace) or {}).get("status") == "True", timeout=150,
                   what="Ready=True from the previous operator")  # fmt: skip
        before = _children(kube, namespace)
        assert before and {image for _, image in before.values()} == {old_env["KEELSON_REFERENCE_IMAGE"]}

        since = utcnow()
        helm.install(stack, helm.CHART, upgrade=True)
        crd = kube.get("crd", CRD_NAME, "")
        expected = custom_resource_definition()["metadata"]["annotations"][SCHEMA_DIGEST_ANNOTATION]
        assert crd is not None and crd["metadata"]["annotations"][SCHEMA_DIGEST_ANNOTATION] == expected
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        # Recreate: the old pod goes, then the new one starts.
        assert processes.stop(stack.state_dir, OLD, timeout=30)
        helm.start_local_operator(stack, NEW, env=new_env, ports=new_ports, kubeconfig=kubeconfig)
        # Reconciled by the new operator (its first passes), then once more on a resync.
        first = eventually(lambda: _passes_after(new_ports[0], 0), timeout=90, what="the new operator's first pass")
        eventually(lambda: _passes_after(new_ports[0], first), timeout=60, what="a later pass (resync)")

        # The Events the operator records of those writes are not writes to the platform's children.
        writes = [w for w in _child_writes(stack, since, namespace) if not w.startswith("create events/")]
        written = [w.split(" ", 1)[1] for w in writes]
        assert [w for w in writes if w.split(" ", 1)[1] not in DOCUMENTED_CHANGES] == []
        assert all(written.count(name) == 1 for name in written), writes  # once each: no write loop
        after = _children(kube, namespace)
        assert {k: v for k, v in after.items() if k not in ROLLED_BY_CHANGES} == {
            k: v for k, v in before.items() if k not in ROLLED_BY_CHANGES
        }
        assert all(after[name][1] == before[name][1] for name in ROLLED_BY_CHANGES)  # the same image
        # Ready again once the rolled Deployments are available (kwok: seconds).
        eventually(lambda: (kube.condition("shop", namespace) or {}).get("status") == "True", timeout=90,
                   what="Ready=True after the roll")  # fmt: skip
        assert kube.condition("shop", namespace, CRD_CURRENT) is None  # the upgraded CRD matches
    finally:
        for name in (OLD, NEW):
            if processes.alive(stack.state_dir, name):
                print(f"--- {name}:\n{processes.log_tail(stack.state_dir, name, lines=40)}")
            processes.stop(stack.state_dir, name, timeout=30)
        helm.helm("uninstall", helm.RELEASE, "-n", helm.NAMESPACE, "--wait", kubeconfig=stack.admin_kubeconfig,
                  check=False)  # fmt: skip
        helm.restore_stack(stack)
