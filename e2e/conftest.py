"""The cluster tests' stack: a real kube-apiserver, controller-manager, scheduler, etcd and kwok,
started with `keelson dev up`, with the operator from this working tree running as the chart's
ServiceAccount (so it holds only the chart's RBAC). Set KEELSON_E2E_STATE_DIR to reuse a stack."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.kube import Kube, eventually, third_party_crds
from keelson.devstack.stack import LocalStack

_counter = itertools.count()


# Judges the audit log of every other test in the session, so it runs after all of them whatever
# the order of the command line's arguments (its name also sorts last in e2e/).
RUNS_LAST = "e2e/test_zz_least_privilege.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid.startswith(RUNS_LAST))  # stable: the rest keep their order


# The operator under test resyncs every 10 s rather than 60: an idle window of a test then spans
# several resyncs, which is where a write loop or a repeated status write would show.
RESYNC_SECONDS = "10"


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    os.environ.setdefault("KEELSON_RESYNC_SECONDS", RESYNC_SECONDS)
    reuse = os.environ.get("KEELSON_E2E_STATE_DIR")
    state = Path(reuse) if reuse else Path(tempfile.mkdtemp(prefix="keelson-e2e-"))
    local = LocalStack(state)
    local.up(kafka=True, postgres=True, operator=True, progress=print)
    yield local
    if not reuse:
        local.down()
        shutil.rmtree(state, ignore_errors=True)


@contextlib.contextmanager
def operator_env(stack: LocalStack, **env: str) -> Iterator[None]:
    """The stack's operator restarted with ``env`` for the block, then as it was."""
    saved = {key: os.environ.get(key) for key in env}
    stack.stop_operator()
    os.environ.update(env)
    try:
        stack.start_operator()
        yield
    finally:
        stack.stop_operator()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stack.start_operator()


@pytest.fixture(scope="session")
def image() -> Iterator[str]:
    """The project's image, built from the working tree's Dockerfile once per session as
    scripts/image builds it (the base and every unchanged layer cached: seconds when warm)."""
    from keelson.devstack import image as images

    tag = f"localhost/keelson:e2e-{os.getpid()}"
    images.build(Path(__file__).resolve().parents[1], tag, progress=print)
    yield tag
    images.remove(tag)


@pytest.fixture(scope="session")
def kube(stack: LocalStack) -> Kube:
    return Kube(stack.admin_kubeconfig)


@pytest.fixture
def namespace(kube: Kube, stack: LocalStack, request: pytest.FixtureRequest) -> Iterator[str]:
    base = request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:40].strip("-")
    name = kube.namespace(f"{base}-{os.getpid() % 10000}-{next(_counter)}")
    # The Secrets `stack.kafka_settings()` names (the broker's CA, its admin), as `dev apply` does.
    stack.apply_kafka_secrets(name)
    yield name
    # Keep later tests' audit windows and resyncs free of this test's objects.
    kube.run("delete", "namespace", name, "--wait=false", check=False)


# Every third-party kind Keelson can render, with the CRD that serves it.
CRDS = {
    "gateway-api-httproute.yaml": "httproutes.gateway.networking.k8s.io",
    "prometheus-servicemonitor.yaml": "servicemonitors.monitoring.coreos.com",
    "prometheus-prometheusrule.yaml": "prometheusrules.monitoring.coreos.com",
    "strimzi-kafkatopic.yaml": "kafkatopics.kafka.strimzi.io",
    "cnpg-cluster.yaml": "clusters.postgresql.cnpg.io",
    "cnpg-database.yaml": "databases.postgresql.cnpg.io",
}


@pytest.fixture(scope="module")
def third_party_kinds(kube: Kube) -> Iterator[None]:
    """The CRDs, installed for this module only: other modules test the operator without them."""
    created = []
    for file, crd in CRDS.items():
        proc = kube.run("create", "-f", str(third_party_crds() / file), check=False)
        assert proc.returncode == 0 or "AlreadyExists" in proc.stderr, proc.stderr
        if proc.returncode == 0:
            created.append(crd)
        eventually(lambda crd=crd: established(kube, crd), timeout=60, what=f"CRD {crd} established")
    yield
    if created:
        kube.run("delete", "crd", *created, "--wait=true", timeout=180)


def established(kube: Kube, crd: str) -> bool:
    """Polled rather than `kubectl wait`, which fails at once while a new CRD has no conditions yet."""
    path = '{.status.conditions[?(@.type=="Established")].status}'
    return kube.run("get", "crd", crd, "-o", f"jsonpath={path}", check=False).stdout == "True"
