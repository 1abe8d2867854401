"""The services as the image runs them: `python -m keelson_services.run NAME` processes (uvicorn)
on loopback ports, configured only by the env the operator renders."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from e2e.svc_postgres import fresh_database

pytestmark = pytest.mark.postgres


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rendered_env(service: str, port: int, **extra: str) -> dict[str, str]:
    """The ConfigMap's keys, as `operator/keelson/render/configmap.py` writes them."""
    return {
        "KEELSON_PLATFORM": "shop",
        "KEELSON_NAMESPACE": "shop",
        "KEELSON_DOMAIN": "ecommerce",
        "KEELSON_SERVICE": service,
        "KEELSON_PORT": str(port),
        "KEELSON_HTTP_TIMEOUT_SECONDS": "5",
        "KEELSON_BREAKER_FAILURES": "3",
        "KEELSON_BREAKER_OPEN_SECONDS": "30",
        "KEELSON_RETRY_BACKOFF_SECONDS": "1,2,4,8",
        "KEELSON_RETRY_MAX": "3",
        "KEELSON_SERVICE_URLS": "{}",
        "KEELSON_PUBLISHES": "",
        "KEELSON_SUBSCRIBES": "",
        "KEELSON_BIND_HOST": "127.0.0.1",
        "KEELSON_USERS_ARGON2_TIME_COST": "1",
        "KEELSON_USERS_ARGON2_MEMORY_KIB": "1024",
        **extra,
    }


@contextmanager
def service(name: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The service as a process, its output (JSON logs) going to `log`; stopped with SIGTERM."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "keelson_services.run", name],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, deadline_seconds: float = 60) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url} exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling interval, bounded by the deadline
    pytest.fail(f"{url} not ready within {deadline_seconds} s")


def test_users_and_gateway_processes_serve_the_journey_over_loopback(tmp_path: Path) -> None:
    with fresh_database("users") as uri:
        users_port, gateway_port = free_port(), free_port()
        users_url, gateway_url = f"http://127.0.0.1:{users_port}", f"http://127.0.0.1:{gateway_port}"
        users_env = rendered_env("users", users_port, KEELSON_DATABASE_URI=uri)
        gateway_env = rendered_env(
            "gateway",
            gateway_port,
            KEELSON_SERVICE_URLS=json.dumps({"users": users_url}),
            KEELSON_ROUTES=json.dumps([{"path": "/users", "service": "users", "url": users_url}]),
        )
        users_log, gateway_log = tmp_path / "users.log", tmp_path / "gateway.log"
        with service("users", users_env, users_log) as users, service("gateway", gateway_env, gateway_log) as gateway:
            wait_ready(users_url, users, users_log)
            wait_ready(gateway_url, gateway, gateway_log)
            with httpx.Client(base_url=gateway_url, timeout=10) as http:
                registered = http.post(
                    "/api/v1/users", json={"email": "ada@example.com", "password": "correct horse", "name": "Ada"}
                )
                assert registered.status_code == 201, registered.text
                grant = subprocess.run(
                    [sys.executable, "-m", "keelson_services.run", "users", "grant-admin", "ada@example.com"],
                    env={**os.environ, **users_env},
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
                assert grant.returncode == 0, grant.stderr.decode()
                tokens = http.post("/api/v1/auth/token", json={"email": "ada@example.com", "password": "correct horse"})
                auth = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
                me = http.get("/api/v1/users/me", headers=auth)
                assert me.status_code == 200 and me.json()["roles"] == ["admin", "customer"]
                assert http.get("/api/v1/admin/users", headers=auth).status_code == 200
                assert "keelson_http_requests_total" in http.get("/metrics").text
        # A clean shutdown on SIGTERM (uvicorn re-raises the signal once it has drained), and every
        # log line is JSON with the service's name.
        assert {users.returncode, gateway.returncode} <= {0, -signal.SIGTERM}
        lines = [json.loads(line) for line in gateway_log.read_text().splitlines() if line.strip()]
        assert lines and all(line["service"] == "gateway" for line in lines)
        access = [line for line in lines if line.get("path") == "/api/v1/users/me"]
        assert access and access[0]["status"] == 200 and len(access[0]["trace_id"]) == 32
