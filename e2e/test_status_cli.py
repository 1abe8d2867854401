"""`keelson status` against the local stack: the plain output of a Ready platform, as a snapshot."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from e2e.kube import Kube, eventually
from keelson.devstack.stack import LocalStack
from tests.cases.invalid_platforms import example, workloads_example

pytestmark = pytest.mark.cluster

SNAPSHOT = Path(__file__).parent / "snapshots" / "status_shop.txt"


def _status(kube: Kube, *args: str, stack: LocalStack | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig)}
    if stack is not None:  # KEELSON_KAFKA_*: how it reaches the brokers, as `keelson dev env` exports it
        env.update(stack.kafka_security.env())
    env.pop("NO_COLOR", None)
    # Piped, as in a script: plain text, no colour.
    return subprocess.run(
        [sys.executable, "-m", "keelson.cli", "status", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _normalise(text: str, namespace: str) -> str:
    """Ages and the test's namespace vary from run to run. An age and its padding are replaced by
    a marker of their width, so the columns stay as printed (the SINCE and AGE headers keep those
    columns at least as wide as any age a test sees). Of the Events, only `Ready` is certain: how
    many `Progressing` warnings come before it depends on how fast kwok starts the pods, so
    warnings are dropped and that section's cells re-joined (a dropped row can narrow its columns)."""
    head, _, events = text.replace(namespace, "<namespace>").partition("\nEvents\n")
    head = re.sub(r"(?<=  )\d{1,3}[smhd] +(?=\S)", lambda m: "<age>".ljust(len(m.group())), head)
    rows = [re.split(r" {2,}", line.strip()) for line in events.splitlines()]
    kept = [
        "  " + "  ".join("<age>" if re.fullmatch(r"\d+[smhd]", cell) else cell for cell in cells)
        for cells in rows
        if len(cells) < 2 or cells[1] != "Warning"
    ]
    return head + "\nEvents\n" + "\n".join(kept) + "\n"


def test_status_of_a_ready_platform(kube: Kube, namespace: str) -> None:
    kube.apply(namespace, workloads_example())
    eventually(lambda: (kube.condition("shop", namespace) or {}).get("status") == "True", timeout=90, what="shop Ready")
    eventually(lambda: "Normal   Ready" in _status(kube, "shop", "-n", namespace).stdout, timeout=30, what="event")
    proc = _status(kube, "shop", "-n", namespace)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout
    text = _normalise(proc.stdout, namespace)
    if os.environ.get("KEELSON_UPDATE_GOLDEN") == "1":
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text()

    as_json = json.loads(_status(kube, "shop", "-n", namespace, "-o", "json").stdout)
    assert as_json["ready"] == "True" and {s["name"] for s in as_json["services"] if s["available"]} == {
        "gateway", "users", "orders", "payments", "notifications",
    }  # fmt: skip

    summary = _status(kube, "-n", namespace).stdout.splitlines()
    assert summary[1].split() == [namespace, "shop", "True", "Ready", "5/5", "1,000,000"]


def test_status_of_a_platform_that_does_not_exist(kube: Kube, namespace: str) -> None:
    proc = _status(kube, "nothing", "-n", namespace)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: MicroservicePlatform 'nothing' not found in namespace '{namespace}'"


def test_dlq_depth_from_the_broker(kube: Kube, stack: LocalStack, namespace: str) -> None:
    doc = example()
    doc["spec"].pop("databases")
    for svc in doc["spec"]["services"]:
        svc.pop("database", None)
    # Topics of a domain of this test's own, deleted with it: the broker is shared by other tests.
    domain = f"ecommerce-dlq{os.getpid() % 10000}"
    doc["spec"]["domain"] = domain
    doc["spec"]["kafka"]["deletionPolicy"] = "Delete"
    stack.apply_manifest(yaml.safe_dump(doc), namespace)  # pointed at the stack's broker
    eventually(
        lambda: (kube.condition("shop", namespace, "TopicsReady") or {}).get("status") == "True",
        timeout=90,
        what="topics created",
    )
    dlq = f"{domain}.payment.failed.orders.dlq"

    async def dead_letter(count: int) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, **stack.kafka_security.options())
        await producer.start()
        try:
            for i in range(count):
                await producer.send_and_wait(dlq, f"letter {i}".encode(), key=b"k")
        finally:
            await producer.stop()

    asyncio.run(dead_letter(2))
    proc = _status(kube, "shop", "-n", namespace, "-o", "json", "--kafka-bootstrap", stack.kafka_bootstrap, stack=stack)
    view = json.loads(proc.stdout)
    depths = {d["dlq"]: d["depth"] for t in view["topics"] for d in t["dlqs"]}
    assert depths[dlq] == 2
    assert set(depths.values()) == {0, 2} and list(depths.values()).count(2) == 1
    assert view["dlq_depth_source"] == f"messages retained, from Kafka at {stack.kafka_bootstrap}"

    unreachable = json.loads(
        _status(kube, "shop", "-n", namespace, "-o", "json", "--kafka-bootstrap", "127.0.0.1:1", stack=stack).stdout
    )
    assert unreachable["dlq_depth_source"].startswith("not read")
    assert {d["depth"] for t in unreachable["topics"] for d in t["dlqs"]} == {None}
