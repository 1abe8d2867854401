"""Through Argo CD: the shipped Application is accepted by Argo CD's real CRD, and the shipped
health check calls the operator's live platforms what they are."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from e2e.kube import Kube, eventually, third_party_crds
from keelson.devstack.stack import LocalStack
from tests.unit.test_argocd_health import health

pytestmark = pytest.mark.cluster
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_application_is_accepted_by_argo_cds_crd(kube: Kube) -> None:
    kube.run("apply", "--server-side", "-f", str(third_party_crds() / "argocd-application.yaml"))
    kube.run("create", "namespace", "argocd", check=False)  # may exist from an earlier run
    dry_run = (
        "apply",
        "--server-side",
        "--dry-run=server",
        "-o",
        "yaml",
        "-f",
        str(EXAMPLES / "argocd" / "application.yaml"),
    )
    # Until the new CRD is established and in kubectl's discovery, the kind is unknown.
    eventually(lambda: kube.run(*dry_run, check=False).returncode == 0, timeout=60, what="Application accepted")
    applied = kube.run(*dry_run)
    app = yaml.safe_load(applied.stdout)
    assert app["spec"]["syncPolicy"]["syncOptions"] == ["CreateNamespace=true", "ServerSideApply=true"]


def test_the_health_check_follows_a_live_platform(stack: LocalStack, kube: Kube, namespace: str) -> None:
    doc = yaml.safe_load((EXAMPLES / "ecommerce.yaml").read_text())
    doc["spec"]["domain"] = f"shop{uuid.uuid4().hex[:8]}"  # topics of its own on the shared broker
    stack.apply_manifest(yaml.safe_dump(doc), namespace)
    eventually(lambda: health(kube.get("msp", "shop", namespace) or {})[0] == "Healthy", timeout=180, what="Healthy")

    kube.run("annotate", "msp", "shop", "-n", namespace, "keelson.dev/reconcile=paused")
    eventually(lambda: health(kube.get("msp", "shop", namespace) or {})[0] == "Suspended", timeout=30, what="paused")
    kube.run("annotate", "msp", "shop", "-n", namespace, "keelson.dev/reconcile-")
    eventually(lambda: health(kube.get("msp", "shop", namespace) or {})[0] == "Healthy", timeout=30, what="resumed")

    # A change not yet Ready: a new service whose pods have to start is on its way, not broken.
    doc = kube.get("msp", "shop", namespace)
    assert doc is not None
    kube.run(
        "patch", "msp", "shop", "-n", namespace, "--type=json",
        "-p", '[{"op": "add", "path": "/spec/services/-", "value": {"name": "audit", "image": "ghcr.io/x/audit:1"}}]',
    )  # fmt: skip
    seen = []
    eventually(
        lambda: seen.append(health(kube.get("msp", "shop", namespace) or {})) or seen[-1][0] == "Healthy",
        timeout=120,
        what="Healthy again",
    )
    assert {status for status, _ in seen} <= {"Progressing", "Healthy"}, seen
    final = kube.get("msp", "shop", namespace)
    assert final is not None and "audit" in {s["name"] for s in final["status"]["services"]}
