"""The kubelet stand-in (e2e/kubelet.py) on pod specs, without a cluster: what it runs, and that it
refuses what it cannot run rather than dropping it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from e2e import helm, kubelet

DOWNWARD = {"metadata.name": "keelson-operator-abc", "metadata.namespace": "keelson-system"}


def _pod() -> dict[str, Any]:
    return {
        "serviceAccountName": "keelson-operator",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001},
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {
                "name": "podinfo",
                "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]},
            },
        ],
        "containers": [
            {
                "name": "operator",
                "image": "localhost/keelson:t",
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"memory": "256Mi", "cpu": "1"},
                },
                "args": ["operator", "run", "--health-port=8081"],
                "env": [
                    {"name": "KEELSON_WORKERS", "value": "4"},
                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                ],
                "ports": [{"name": "health", "containerPort": 8081}],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "health"}},
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8081}},
                "securityContext": {
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                    "allowPrivilegeEscalation": False,
                },
                "volumeMounts": [
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": "podinfo", "mountPath": "/etc/podinfo"},
                ],
            }
        ],
    }


def test_a_pod_becomes_podman_options(tmp_path: Path) -> None:
    run = kubelet.translate(_pod(), service_account=tmp_path / "sa", downward=DOWNWARD, workdir=tmp_path / "v")
    assert run.image == "localhost/keelson:t" and run.args == ["operator", "run", "--health-port=8081"]
    assert {
        "--user=10001:10001",
        "--read-only",
        "--read-only-tmpfs=false",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--memory=268435456b",
        "--cpus=1.0",
        "--cpu-shares=102",
        "--memory-reservation=134217728b",
        "--env=KEELSON_WORKERS=4",
        "--env=POD_NAMESPACE=keelson-system",
        "--tmpfs=/tmp:rw,mode=1777",
        f"--volume={tmp_path / 'v' / 'podinfo'}:/etc/podinfo:ro",
        f"--volume={tmp_path / 'sa'}:{kubelet.SERVICE_ACCOUNT_DIR}:ro",
    } == set(run.options)
    assert (tmp_path / "v" / "podinfo" / "name").read_text() == "keelson-operator-abc"
    assert run.probes == {
        "livenessProbe": "http://127.0.0.1:8081/healthz",
        "readinessProbe": "http://127.0.0.1:8081/readyz",
    }


def test_no_token_when_the_pod_opts_out(tmp_path: Path) -> None:
    pod = {**_pod(), "automountServiceAccountToken": False}
    run = kubelet.translate(pod, service_account=tmp_path, downward=DOWNWARD, workdir=tmp_path)
    assert not any(kubelet.SERVICE_ACCOUNT_DIR in option for option in run.options)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda p: p.update(hostPID=True), "hostPID"),
        (lambda p: p["containers"][0].update(command=["sh"]), "command"),
        (
            lambda p: (
                p["volumes"].append({"name": "cfg", "configMap": {"name": "x"}})
                or p["containers"][0]["volumeMounts"].append({"name": "cfg", "mountPath": "/cfg"})
            ),
            "configMap",
        ),
        (lambda p: p["containers"][0]["env"].append({"name": "X", "valueFrom": {"secretKeyRef": {}}}), "env X"),
    ],
)
def test_what_it_cannot_run_fails_loudly(tmp_path: Path, change: Any, says: str) -> None:
    pod = _pod()
    change(pod)
    with pytest.raises(AssertionError, match=says):
        kubelet.translate(pod, service_account=None, downward=DOWNWARD, workdir=tmp_path)


def test_the_chart_pod_template_is_runnable(tmp_path: Path) -> None:
    """Every field the chart's Deployment renders is one the stand-in runs or knows not to."""
    if not _helm_built():
        pytest.skip("helm is built by `keelson dev up`")
    docs = helm.render()
    pod = helm.deployment(docs)["spec"]["template"]["spec"]
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    run = kubelet.translate(pod, service_account=None, downward=DOWNWARD, workdir=tmp_path, secrets=secrets)
    assert set(run.probes) >= {"livenessProbe", "readinessProbe"}
    # The webhook's certificate, mounted where the operator's env says it is.
    assert (tmp_path / "webhook-tls" / "tls.crt").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert "--volume=" + str(tmp_path / "webhook-tls") + ":/etc/keelson/webhook:ro" in run.options


def _helm_built() -> bool:
    from keelson.devstack.building import binary_paths

    return binary_paths()["helm"].exists()
