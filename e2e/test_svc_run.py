"""The services as the image runs them: `python -m keelson_services.run NAME` processes (uvicorn)
on loopback ports, configured only by the env the operator renders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from e2e.svc_postgres import fresh_database
from e2e.svc_processes import rendered_env, service, wait_ready
from keelson.devstack.ports import free_port

pytestmark = pytest.mark.postgres


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
