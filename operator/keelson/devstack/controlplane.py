"""Command lines of the control plane's daemons, and the files they read.

Pure functions of the stack's paths, ports and binaries, so they can be read (and tested)
without starting anything.
"""

from collections.abc import Mapping
from pathlib import Path

from keelson.devstack.certs import Pki
from keelson.devstack.paths import StackPaths
from keelson.devstack.ports import LOOPBACK

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/16"
POD_CIDR = "10.244.0.1/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"

# Metadata for every request: who did what to which object, without bodies. RequestReceived
# is left out because every request is logged again when it completes (or, for watches, when
# its response starts), so it would only double the log.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
  - RequestReceived
rules:
  - level: Metadata
"""

# Rotated audit logs kept beside the current one (200 MB each): enough for a whole cluster test
# session, which e2e/test_zz_least_privilege.py reads from its first request on.
AUDIT_LOG_MAX_BACKUPS = 5

# kwok renews each node's Lease at this period; the node heartbeat Stage then only rewrites
# node status every ten minutes, which keeps the audit log quiet (kwokctl's default).
KWOK_NODE_LEASE_SECONDS = 40


def etcd_argv(etcd: Path, paths: StackPaths, ports: Mapping[str, int]) -> list[str]:
    client = f"http://{LOOPBACK}:{ports['etcd-client']}"
    peer = f"http://{LOOPBACK}:{ports['etcd-peer']}"
    return [
        str(etcd),
        "--name=keelson",
        f"--data-dir={paths.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=keelson={peer}",
        "--initial-cluster-state=new",
        # A throwaway cluster: losing the last writes on a power cut is fine, fsync latency is not.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def apiserver_argv(apiserver: Path, paths: StackPaths, pki: Pki, ports: Mapping[str, int]) -> list[str]:
    return [
        str(apiserver),
        f"--etcd-servers=http://{LOOPBACK}:{ports['etcd-client']}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={ports['kube-apiserver']}",
        # The endpoint reconciler refuses a loopback advertise address.
        "--endpoint-reconciler-type=none",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        f"--client-ca-file={pki.ca.cert}",
        f"--tls-cert-file={pki.apiserver.cert}",
        f"--tls-private-key-file={pki.apiserver.key}",
        f"--cert-dir={paths.apiserver_cert_dir}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.service_account_key}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        # As envtest does: no token volume injection, so pods are created exactly as submitted.
        "--disable-admission-plugins=ServiceAccount",
        f"--audit-policy-file={paths.audit_policy}",
        f"--audit-log-path={paths.audit_log}",
        "--audit-log-format=json",
        # Write each event before the request returns, so tests can read it right after.
        "--audit-log-mode=blocking",
        # Bounded disk use; a long-lived stack rotates rather than fills the disk.
        "--audit-log-maxsize=200",
        f"--audit-log-maxbackup={AUDIT_LOG_MAX_BACKUPS}",
        # On SIGTERM, give open watches 2 s instead of the 60 s request timeout: otherwise a
        # restart with the operator watching hangs for a minute.
        "--shutdown-send-retry-after=true",
        "--profiling=false",
    ]


def _delegated_auth(kubeconfig: Path) -> list[str]:
    # Lets the daemon authenticate and authorize callers of its own secure port through the
    # apiserver, instead of warning at start-up that it cannot.
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
    ]


def controller_manager_argv(binary: Path, paths: StackPaths, pki: Pki, ports: Mapping[str, int]) -> list[str]:
    return [
        str(binary),
        *_delegated_auth(paths.component_kubeconfig("kube-controller-manager")),
        f"--bind-address={LOOPBACK}",
        f"--secure-port={ports['kube-controller-manager']}",
        "--leader-elect=false",
        "--controllers=*",
        f"--root-ca-file={pki.ca.cert}",
        f"--service-account-private-key-file={pki.service_account_key}",
        # Every controller acts with the manager's own (system:masters) identity; per-controller
        # service-account tokens would only add a bootstrap dependency.
        "--use-service-account-credentials=false",
        # CertificateSigningRequests get signed by the stack's CA, as in a real cluster.
        f"--cluster-signing-cert-file={pki.ca.cert}",
        f"--cluster-signing-key-file={pki.ca.key}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--profiling=false",
    ]


def scheduler_argv(binary: Path, paths: StackPaths, ports: Mapping[str, int]) -> list[str]:
    return [
        str(binary),
        *_delegated_auth(paths.component_kubeconfig("kube-scheduler")),
        f"--bind-address={LOOPBACK}",
        f"--secure-port={ports['kube-scheduler']}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def kwok_argv(binary: Path, stages: Path, paths: StackPaths, ports: Mapping[str, int]) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={paths.component_kubeconfig('kwok')}",
        # The Stage objects that make nodes Ready and pods Running (see building.KWOK_STAGE_FILES).
        f"--config={stages}",
        "--manage-all-nodes=true",
        f"--node-ip={LOOPBACK}",
        f"--cidr={POD_CIDR}",
        f"--node-lease-duration-seconds={KWOK_NODE_LEASE_SECONDS}",
        # Serves /healthz, which is how we know kwok is up.
        f"--server-address={LOOPBACK}:{ports['kwok']}",
    ]
