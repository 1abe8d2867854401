"""The reference services as the image runs them: `python -m keelson_services.run NAME` OS
processes (uvicorn) on loopback ports, configured only by env. Shared by the tests that run real
processes (test_svc_run.py, test_crash_recovery.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

# A key-encryption key for the users service (`KEELSON_KEY_ENCRYPTION_KEY`), as the operator
# generates one per database Secret: 32 bytes, URL-safe base64.
TEST_KEK = "a2VlbHNvbi1lMmUta2V5LWVuY3J5cHRpb24ta2V5LTE="


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
        "KEELSON_KEY_ENCRYPTION_KEY": TEST_KEK,
        **extra,
    }


def spawn(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start the service; its output (JSON logs) is appended to `log`, so a restarted service
    keeps one log."""
    with log.open("ab") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "keelson_services.run", name],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes], *, timeout: float = 30) -> None:
    """SIGTERM (a clean shutdown), SIGKILL if it has not exited within `timeout`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def service(name: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The service as a process, its output (JSON logs) going to `log`; stopped with SIGTERM."""
    process = spawn(name, env, log)
    try:
        yield process
    finally:
        stop(process)


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
