"""The image as a cluster runs it, built from the Dockerfile (scripts/image) and run with podman:
the CLI, a non-root user on a read-only root filesystem, nothing of development in it, its size,
the operator against the local stack as the chart's ServiceAccount (the in-cluster token and CA
mounted where the kubelet mounts them), and a reference service against the stack's PostgreSQL.

podman runs with ``--network=host`` (the stack listens on loopback) and the chart's container
securityContext: uid 10001, ``--read-only`` without podman's extra tmpfs mounts, all capabilities
dropped, no privilege escalation."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from e2e.kube import Kube, eventually
from e2e.svc_postgres import ADMIN_URI_ENV, fresh_database
from e2e.svc_processes import free_port, rendered_env
from keelson.devstack import cluster
from keelson.devstack import image as images
from keelson.devstack.stack import LocalStack
from tests.cases.invalid_platforms import workloads_example

pytestmark = pytest.mark.image

# Target of issue 10; the first Dockerfile made 518 MB (docs/benchmarks.md).
MAX_IMAGE_BYTES = 250_000_000
# What the chart's Deployment sets for the container (charts/keelson/templates/deployment.yaml).
RESTRICTED = [
    "--user=10001:10001",
    "--read-only",
    "--read-only-tmpfs=false",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
]
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env=images.container_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def run(image: str, *args: str, entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
    options = [f"--entrypoint={entrypoint}"] if entrypoint else []
    return podman("run", "--rm", "--pull=never", "--network=host", *RESTRICTED, *options, image, *args)


@contextmanager
def container(
    image: str, name: str, args: list[str], *, env: dict[str, str], volumes: Sequence[str] = ()
) -> Iterator[str]:
    """A detached container, removed afterwards; its logs are shown when the test fails."""
    options = [f"--env={key}={value}" for key, value in env.items()] + [f"--volume={v}" for v in volumes]
    started = podman(
        "run", "--detach", "--pull=never", "--network=host", f"--name={name}", *RESTRICTED, *options, image, *args
    )
    assert started.returncode == 0, started.stderr
    try:
        yield name
    finally:
        print(f"--- logs of {name}:\n{logs(name)[-6000:]}")
        podman("rm", "--force", "--time=10", name)


def logs(name: str) -> str:
    result = podman("logs", name)
    return result.stdout + result.stderr


def test_image_runs_keelson_help(image: str) -> None:
    result = run(image, "--help")
    assert result.returncode == 0, result.stderr
    commands = set(result.stdout.split("{", 1)[1].split("}", 1)[0].split(","))
    assert {"crd", "render", "operator", "gateway", "users", "orders", "payments", "notifications"} <= commands
    # The local stack is development tooling, not in the image: `keelson dev` is not offered.
    assert "dev" not in commands


def test_image_runs_as_uid_10001_on_a_read_only_root(image: str) -> None:
    config = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    probe = (
        "import os, sys\n"
        "print(os.getuid(), os.getgid())\n"
        "try:\n"
        "    open('/opt/keelson/probe', 'w')\n"
        "except OSError as error:\n"
        "    print(error.errno)\n"
    )
    result = podman("run", "--rm", "--pull=never", "--network=host", "--read-only", "--read-only-tmpfs=false",
                    "--entrypoint=python", image, "-c", probe)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["10001", "10001", "30"]  # EROFS
    # The CLI works there: it writes nothing (no bytecode, no caches).
    rendered = run(image, "crd")
    assert rendered.returncode == 0, rendered.stderr
    assert "MicroservicePlatform" in rendered.stdout


def test_image_carries_no_development_or_test_tooling(image: str) -> None:
    probe = (
        "import importlib.util as u\n"
        "names = ['keelson.devstack', 'pytest', 'hypothesis', 'schemathesis', 'mypy', 'ruff', 'pip', 'aiosmtpd']\n"
        "print(' '.join(n for n in names if u.find_spec(n) is not None))\n"
    )
    result = run(image, "-c", probe, entrypoint="python")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_image_size_within_budget(image: str) -> None:
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    layers = images.history(image)
    report = "\n".join(f"{images.megabytes(layer.size):>10}  {layer.created_by[:90]}" for layer in layers)
    assert size <= MAX_IMAGE_BYTES, f"{images.megabytes(size)} > {images.megabytes(MAX_IMAGE_BYTES)}:\n{report}"


@contextmanager
def stack_operator_stopped(stack: LocalStack) -> Iterator[None]:
    """The stack runs the working tree's operator; one operator at a time reconciles."""
    stack.stop_operator()
    try:
        yield
    finally:
        stack.start_operator()


def service_account_dir(stack: LocalStack, directory: Path) -> Path:
    """What the kubelet mounts: a TokenRequest token of the chart's ServiceAccount, the cluster's
    CA and the namespace, readable by the image's user."""
    directory.mkdir()
    (directory / "token").write_text(cluster.create_operator_token(stack.kubectl(), duration="1h"))
    (directory / "ca.crt").write_bytes(stack.pki.ca.cert.read_bytes())
    (directory / "namespace").write_text(cluster.KEELSON_NAMESPACE)
    for path in (directory, *directory.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return directory


def _ready(kube: Kube, namespace: str) -> dict[str, object] | None:
    condition = kube.condition("shop", namespace)
    return condition if condition and condition["status"] == "True" else None


@pytest.mark.cluster
def test_operator_from_the_image_brings_the_example_to_ready(
    image: str, stack: LocalStack, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    tokens = service_account_dir(stack, tmp_path / "serviceaccount")
    metrics, health = free_port(), free_port()
    env = {
        # In-cluster configuration, as the kubelet sets it, pointing at the stack's apiserver.
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(stack.ports["kube-apiserver"]),
        "KEELSON_LOG_LEVEL": "info",
        "KEELSON_REFERENCE_IMAGE": image,
        "KEELSON_RESYNC_SECONDS": os.environ.get("KEELSON_RESYNC_SECONDS", "10"),
    }
    args = ["operator", "run", f"--metrics-port={metrics}", f"--health-port={health}"]
    name = f"keelson-e2e-operator-{os.getpid()}"
    with (
        stack_operator_stopped(stack),
        container(image, name, args, env=env, volumes=[f"{tokens}:{SERVICE_ACCOUNT_DIR}:ro"]),
    ):
        eventually(lambda: _healthy(f"http://127.0.0.1:{health}/healthz"), timeout=60, what="operator healthy")
        kube.apply(namespace, workloads_example())
        eventually(lambda: _ready(kube, namespace), timeout=120, what="Ready=True from the image's operator")
        msp = kube.get("msp", "shop", namespace)
        assert msp is not None and msp["status"]["readyServices"] == "5/5"
        deployment = kube.get("deployment", "users", namespace)
        assert deployment is not None
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image
        assert "keelson_objects_applied_total" in httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5).text
        assert namespace in logs(name)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.cluster
@pytest.mark.postgres
def test_users_service_from_the_image_answers_against_the_stack_postgres(
    image: str, stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ADMIN_URI_ENV, stack.postgres_admin_uri)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with fresh_database("users") as uri:
        env = rendered_env("users", port, KEELSON_DATABASE_URI=uri)
        name = f"keelson-e2e-users-{os.getpid()}"
        with container(image, name, ["users"], env=env):
            eventually(lambda: _healthy(url + "/readyz"), timeout=60, what="users ready")
            with httpx.Client(base_url=url, timeout=10) as http:
                body = {"email": "ada@example.com", "password": "correct horse", "name": "Ada"}
                registered = http.post("/api/v1/users", json=body)
                assert registered.status_code == 201, registered.text
                tokens = http.post("/api/v1/auth/token", json={"email": body["email"], "password": body["password"]})
                assert tokens.status_code == 200, tokens.text
                # Behind the gateway, which verifies the token and passes on who the caller is.
                identity = {"X-User-Id": str(registered.json()["id"]), "X-User-Roles": "customer"}
                me = http.get("/api/v1/users/me", headers=identity)
                assert me.status_code == 200 and me.json()["email"] == "ada@example.com"
            lines = [json.loads(line) for line in logs(name).splitlines() if line.startswith("{")]
            assert any(line.get("path") == "/api/v1/users/me" and line.get("status") == 200 for line in lines)
