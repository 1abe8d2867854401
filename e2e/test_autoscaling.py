"""Switching a service's autoscaling on and off on a real control plane: the Deployment's replicas
pass from the operator to the HPA and back without ever dropping below what was asked for."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from e2e.kube import Kube, eventually
from tests.cases.invalid_platforms import workloads_example

pytestmark = pytest.mark.cluster

DECLARED = 4
DECLARED_AFTER = 5


def _users(doc: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in doc["spec"]["services"] if s["name"] == "users")


def _observed(kube: Kube, namespace: str, generation: int) -> bool:
    status = (kube.get("msp", "shop", namespace) or {}).get("status") or {}
    return bool(status.get("observedGeneration") == generation)


@contextmanager
def _replicas_seen(kube: Kube, namespace: str, name: str) -> Iterator[list[int]]:
    """Every `.spec.replicas` the Deployment passes through, from a watch stream: a watch delivers
    each stored version, so even a value that stood for a millisecond is seen."""
    seen: list[int] = []
    proc = subprocess.Popen(
        [
            "kubectl",
            f"--kubeconfig={kube.kubeconfig}",
            "get",
            "deployment",
            name,
            "-n",
            namespace,
            "--watch",
            "-o",
            'jsonpath={.metadata.resourceVersion} {.spec.replicas}{"\\n"}',
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)  # the watch is established (its first line is the current version)
        yield seen
        time.sleep(2)  # the last versions reach the stream
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        seen.extend(int(line.split()[1]) for line in out.splitlines() if len(line.split()) == 2)


def test_switching_autoscaling_never_drops_below_the_minimum(kube: Kube, namespace: str) -> None:
    doc = workloads_example()
    _users(doc).update(replicas=DECLARED, autoscaling={"enabled": False})
    kube.apply(namespace, doc)
    eventually(lambda: _observed(kube, namespace, 1), timeout=60, what="generation 1 observed")
    eventually(
        lambda: (kube.get("deployment", "users", namespace) or {}).get("spec", {}).get("replicas") == DECLARED,
        timeout=30,
        what=f"users at {DECLARED}",
    )
    assert kube.get("hpa", "users", namespace) is None
    minimum = kube.get("msp", "shop", namespace)["status"]["effectiveDefaults"]["autoscaling"]["minReplicas"]  # type: ignore[index]
    assert 1 < minimum <= DECLARED

    # On: the HPA takes over replicas; the Deployment keeps its size meanwhile.
    with _replicas_seen(kube, namespace, "users") as on:
        _users(doc)["autoscaling"] = {"enabled": True}
        kube.apply(namespace, doc)
        eventually(lambda: _observed(kube, namespace, 2), timeout=60, what="generation 2 observed")
        eventually(lambda: kube.get("hpa", "users", namespace), timeout=30, what="HPA created")
        time.sleep(20)  # the HPA controller's sync period (15 s): let it act on what it found
    assert on and min(on) >= minimum, on

    # Off again, with another declared size: straight there, not through the default of 1.
    with _replicas_seen(kube, namespace, "users") as off:
        _users(doc).update(replicas=DECLARED_AFTER, autoscaling={"enabled": False})
        kube.apply(namespace, doc)
        eventually(lambda: _observed(kube, namespace, 3), timeout=60, what="generation 3 observed")
        eventually(lambda: kube.get("hpa", "users", namespace) is None, timeout=30, what="HPA deleted")
        time.sleep(5)
    assert off and min(off) >= minimum and off[-1] == DECLARED_AFTER, off
