"""Daemon command lines and the objects put into the cluster."""

from pathlib import Path

import yaml

from keelson.devstack import cluster, controlplane
from keelson.devstack.certs import Pki
from keelson.devstack.paths import StackPaths

PORTS = {
    "etcd-client": 2379,
    "etcd-peer": 2380,
    "kube-apiserver": 6443,
    "kube-controller-manager": 10257,
    "kube-scheduler": 10259,
    "kwok": 10247,
}


def test_apiserver_flags(tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    argv = controlplane.apiserver_argv(Path("/bin/kube-apiserver"), paths, Pki(tmp_path / "pki"), PORTS)
    assert "--etcd-servers=http://127.0.0.1:2379" in argv
    assert "--secure-port=6443" in argv
    assert "--endpoint-reconciler-type=none" in argv
    assert "--disable-admission-plugins=ServiceAccount" in argv
    assert f"--audit-log-path={tmp_path / 'audit.log'}" in argv
    assert "--audit-log-format=json" in argv
    assert "--audit-log-mode=blocking" in argv
    assert f"--service-account-signing-key-file={tmp_path / 'pki' / 'service-account.key'}" in argv


def test_audit_policy_logs_every_request_at_metadata() -> None:
    policy = yaml.safe_load(controlplane.AUDIT_POLICY)
    assert policy["rules"] == [{"level": "Metadata"}]


def test_etcd_and_controllers_stay_on_loopback(tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    pki = Pki(tmp_path / "pki")
    etcd = controlplane.etcd_argv(Path("/bin/etcd"), paths, PORTS)
    assert "--unsafe-no-fsync" in etcd
    assert "--listen-client-urls=http://127.0.0.1:2379" in etcd
    kcm = controlplane.controller_manager_argv(Path("/bin/kcm"), paths, pki, PORTS)
    scheduler = controlplane.scheduler_argv(Path("/bin/ks"), paths, PORTS)
    for argv, port in ((kcm, 10257), (scheduler, 10259)):
        assert "--bind-address=127.0.0.1" in argv
        assert f"--secure-port={port}" in argv
        assert "--leader-elect=false" in argv
    assert f"--root-ca-file={tmp_path / 'pki' / 'ca.crt'}" in kcm
    kwok = controlplane.kwok_argv(Path("/bin/kwok"), Path("/c/stages.yaml"), paths, PORTS)
    assert "--manage-all-nodes=true" in kwok
    assert "--config=/c/stages.yaml" in kwok
    assert "--server-address=127.0.0.1:10247" in kwok


def test_nodes_are_fake_untainted_and_roomy() -> None:
    nodes = list(yaml.safe_load_all(cluster.nodes_yaml()))
    assert [n["metadata"]["name"] for n in nodes] == ["kwok-node-0", "kwok-node-1", "kwok-node-2"]
    for node in nodes:
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert node["metadata"]["labels"]["type"] == "kwok"
        assert node["status"]["capacity"] == {"cpu": "1000", "memory": "4Ti", "ephemeral-storage": "1Ti", "pods": "500"}
        assert "taints" not in node.get("spec", {})


def test_ready_nodes() -> None:
    nodes = {
        "items": [
            {"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "b"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
            {"metadata": {"name": "c"}, "status": {}},
        ]
    }
    assert cluster.ready_nodes(nodes) == ["a"]
