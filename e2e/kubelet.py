"""What the kubelet would do with a pod spec, as podman arguments (kwok runs no containers).

It turns the operator pod's spec, as the API server stores it, into `podman run` options and
says which probes to call, so that the image test runs exactly what the chart's Deployment asks
for (its only I/O: the files of downward API volumes, written under a directory it is given).
Whatever in the spec it cannot translate fails loudly instead of being dropped, so a new field of
the chart's pod is either run here or deliberately listed as not applicable.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.utils.quantity import parse_quantity

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Scheduling and the image's pull are the API server's and the scheduler's business, not the
# container's; the kubelet's own bookkeeping fields change nothing in how the container runs.
NOT_APPLICABLE_POD = {
    "serviceAccountName", "serviceAccount", "nodeSelector", "tolerations", "affinity", "priorityClassName",
    "imagePullSecrets", "restartPolicy", "terminationGracePeriodSeconds", "dnsPolicy", "schedulerName",
    "securityContext", "containers", "volumes", "automountServiceAccountToken", "enableServiceLinks",
    "topologySpreadConstraints", "priority", "preemptionPolicy",
}  # fmt: skip
NOT_APPLICABLE_CONTAINER = {
    "name", "image", "imagePullPolicy", "resources", "terminationMessagePath", "terminationMessagePolicy",
    "ports", "args", "env", "securityContext", "livenessProbe", "readinessProbe", "startupProbe", "volumeMounts",
}  # fmt: skip


@dataclass
class Container:
    image: str
    options: list[str]
    args: list[str]
    probes: dict[str, str] = field(default_factory=dict)  # probe -> URL on the host network


def translate(
    pod: dict[str, Any],
    *,
    service_account: Path | None,
    downward: dict[str, str],
    workdir: Path,
    secrets: Mapping[str, Mapping[str, Any]] | None = None,
) -> Container:
    """`podman run` options for the pod's one container, on the host's network (as with
    hostNetwork: the stack listens on loopback). `service_account` is the directory holding the
    token, ca.crt and namespace the kubelet would project; `downward` the values of the fieldRefs
    (metadata.name, metadata.namespace, ...) a downward API volume or env may ask for; `secrets`
    the Secrets (by name, as the API serves them) that secret volumes mount."""
    unknown = set(pod) - NOT_APPLICABLE_POD
    assert not unknown, f"pod fields the kubelet stand-in does not run: {sorted(unknown)}"
    (container,) = pod["containers"]
    unknown = set(container) - NOT_APPLICABLE_CONTAINER
    assert not unknown, f"container fields the kubelet stand-in does not run: {sorted(unknown)}"
    options = _security(pod.get("securityContext", {}), container.get("securityContext", {}))
    options += _resources(container.get("resources", {}))
    for var in container.get("env", []):
        options.append(f"--env={var['name']}={_env_value(var, downward)}")
    result = Container(image=container["image"], options=options, args=list(container.get("args", [])))
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        options.append(_mount(volumes[mount["name"]], mount, downward, workdir, secrets or {}))
    if service_account is not None and pod.get("automountServiceAccountToken", True):
        options.append(f"--volume={service_account}:{SERVICE_ACCOUNT_DIR}:ro")
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in container:
            get = container[probe]["httpGet"]
            port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
            result.probes[probe] = f"http://127.0.0.1:{port}{get.get('path', '/')}"
    return result


def _security(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    merged = {**pod, **container}  # the container's settings win, as in Kubernetes
    options = ["--read-only-tmpfs=false"]  # podman would add tmpfs mounts a kubelet does not
    if "runAsUser" in merged:
        options.append(f"--user={merged['runAsUser']}:{merged.get('runAsGroup', merged['runAsUser'])}")
    if merged.get("readOnlyRootFilesystem"):
        options.append("--read-only")
    for capability in merged.get("capabilities", {}).get("drop", []):
        options.append(f"--cap-drop={capability}")
    assert not merged.get("capabilities", {}).get("add"), "capabilities added: not what the chart should ask"
    if merged.get("allowPrivilegeEscalation") is False:
        options.append("--security-opt=no-new-privileges")
    seccomp = merged.get("seccompProfile", {}).get("type", "RuntimeDefault")
    assert seccomp == "RuntimeDefault", f"seccomp {seccomp}: podman runs its default profile"
    if merged.get("runAsNonRoot"):
        assert merged.get("runAsUser", 0) != 0, "runAsNonRoot with uid 0: the kubelet would refuse to start it"
    return options


def _resources(resources: dict[str, Any]) -> list[str]:
    """The cgroup settings the kubelet derives: limits as hard limits, the CPU request as shares."""
    options = []
    limits, requests = resources.get("limits", {}), resources.get("requests", {})
    if "memory" in limits:
        options.append(f"--memory={int(parse_quantity(limits['memory']))}b")
    if "cpu" in limits:
        options.append(f"--cpus={float(parse_quantity(limits['cpu']))}")
    if "cpu" in requests:
        options.append(f"--cpu-shares={max(2, int(parse_quantity(requests['cpu']) * 1024))}")
    if "memory" in requests:
        options.append(f"--memory-reservation={int(parse_quantity(requests['memory']))}b")
    return options


def _env_value(var: dict[str, Any], downward: dict[str, str]) -> str:
    if "value" in var:
        return str(var["value"])
    ref = var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    assert ref in downward, f"env {var['name']}: only literal values and known fieldRefs run here, not {var}"
    return downward[ref]


def _mount(
    volume: dict[str, Any],
    mount: dict[str, Any],
    downward: dict[str, str],
    workdir: Path,
    secrets: Mapping[str, Mapping[str, Any]],
) -> str:
    path = mount["mountPath"]
    if "emptyDir" in volume:
        # Writable by the container's user whatever the image's ownership of the mount point.
        return f"--tmpfs={path}:rw,mode=1777"
    if "downwardAPI" in volume:
        directory = workdir / volume["name"]
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        for item in volume["downwardAPI"]["items"]:
            ref = item["fieldRef"]["fieldPath"]
            assert ref in downward, f"downward API field {ref} not provided to the stand-in"
            (directory / item["path"]).write_text(downward[ref])
            (directory / item["path"]).chmod(0o644)
        return f"--volume={directory}:{path}:ro"
    if "secret" in volume:
        name = volume["secret"]["secretName"]
        assert name in secrets, f"volume {volume['name']}: Secret {name} not given to the stand-in"
        directory = workdir / volume["name"]
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        for key, value in (secrets[name].get("data") or {}).items():
            (directory / key).write_bytes(base64.b64decode(value))
            (directory / key).chmod(0o644)  # the kubelet's defaultMode, 0644
        return f"--volume={directory}:{path}:ro"
    raise AssertionError(f"volume {volume['name']}: kind not run by the kubelet stand-in: {sorted(volume)}")
