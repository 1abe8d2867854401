"""The platform's status on a real control plane: it says what is true now, and only that."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.kube import Kube, eventually
from tests.cases.invalid_platforms import workloads_example

pytestmark = pytest.mark.cluster


def _status(kube: Kube, namespace: str) -> dict[str, Any]:
    return dict((kube.get("msp", "shop", namespace) or {}).get("status") or {})


def _observed(kube: Kube, namespace: str, generation: int) -> dict[str, Any] | None:
    status = _status(kube, namespace)
    return status if status.get("observedGeneration") == generation else None


def test_fields_that_no_longer_apply_leave_the_status(kube: Kube, namespace: str) -> None:
    doc = workloads_example()  # provider none: status.topics lists the topics, no broker needed
    kube.apply(namespace, doc)
    first = eventually(lambda: _observed(kube, namespace, 1), timeout=60, what="generation 1 observed")
    assert first["topics"] and first["sizing"]["dailyUsers"] == 1000000

    for svc in doc["spec"]["services"]:
        svc.pop("publishes", None)
        svc.pop("subscribes", None)
    kube.apply(namespace, doc)
    # The status of a generation is written in one request: once it is observed, it is complete.
    second = eventually(lambda: _observed(kube, namespace, 2), timeout=30, what="generation 2 observed")
    assert "topics" not in second, second["topics"][:2]

    del doc["spec"]["dailyUsers"]
    kube.apply(namespace, doc)
    third = eventually(lambda: _observed(kube, namespace, 3), timeout=30, what="generation 3 observed")
    assert "sizing" not in third, third["sizing"]
    assert "topics" not in third and third["effectiveDefaults"]
