"""A paused platform on a real control plane: one status write to say so, then nothing, whatever
happens to its children, until the annotation goes."""

from __future__ import annotations

import time

import pytest

from e2e.kube import Kube, eventually, operator_writes, utcnow
from keelson.devstack.stack import LocalStack
from tests.cases.invalid_platforms import workloads_example

pytestmark = pytest.mark.cluster


def _condition(kube: Kube, namespace: str, ctype: str) -> str | None:
    cond = kube.condition("shop", namespace, ctype)
    return cond["status"] if cond else None


def _summary(writes: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(w["verb"], w["objectRef"]) for w in writes]


def test_paused_platform_gets_no_writes(kube: Kube, namespace: str, stack: LocalStack) -> None:
    kube.apply(namespace, workloads_example())
    eventually(lambda: _condition(kube, namespace, "Ready") == "True", timeout=90, what="Ready=True")
    time.sleep(2)

    paused_at = utcnow()
    kube.run("annotate", "msp", "shop", "-n", namespace, "keelson.dev/reconcile=paused")
    eventually(lambda: _condition(kube, namespace, "Paused") == "True", timeout=15, what="Paused=True")
    time.sleep(2)
    transition = operator_writes(stack.audit_log, since=paused_at, namespace=namespace)
    assert [(w["objectRef"]["resource"], w["objectRef"].get("subresource")) for w in transition] == [
        ("microserviceplatforms", "status")
    ], _summary(transition)

    # Someone else changes the children: every change wakes the operator, which must not answer.
    since = utcnow()
    kube.run("delete", "configmap", "users-config", "-n", namespace)
    kube.run("delete", "deployment", "orders", "-n", namespace, "--wait=false")
    kube.run("scale", "deployment", "users", "-n", namespace, "--replicas=7")
    kube.run("patch", "service", "payments", "-n", namespace, "--type=merge", "-p", '{"spec":{"selector":{"x":"y"}}}')
    time.sleep(65)  # longer than the operator's 60 s resync
    writes = operator_writes(stack.audit_log, since=since, namespace=namespace)
    assert writes == [], _summary(writes)
    assert kube.get("configmap", "users-config", namespace) is None

    kube.run("annotate", "msp", "shop", "-n", namespace, "keelson.dev/reconcile-")
    eventually(lambda: kube.get("configmap", "users-config", namespace), timeout=15, what="restored after unpause")
    eventually(lambda: _condition(kube, namespace, "Paused") == "False", timeout=15, what="Paused=False")
