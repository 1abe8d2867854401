"""Health probes and deadline-bound waiting for the stack's components."""

import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

POLL_INTERVAL = 0.1


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str


class NotReadyError(RuntimeError):
    """A component did not become healthy in time, or died while we waited."""


def client_tls(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def unverified_tls() -> ssl.SSLContext:
    """For kube-controller-manager's and kube-scheduler's self-signed serving certificates."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def http_health(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> Health:
    """Healthy if ``url`` answers 200; the detail is the body or the error."""
    # No proxy handler: a developer's HTTP(S)_PROXY must never see loopback probes.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=timeout) as response:
            body = response.read(200).decode(errors="replace").strip()
            return Health(response.status == 200, body or str(response.status))
    except urllib.error.HTTPError as error:
        return Health(False, f"HTTP {error.code}")
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return Health(False, str(reason))


def tcp_health(host: str, port: int, timeout: float = 1.0) -> Health:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return Health(True, "accepting connections")
    except OSError as error:
        return Health(False, str(error))


def wait_until(
    check: Callable[[], Health],
    *,
    what: str,
    timeout: float,
    still_running: Callable[[], bool] | None = None,
    diagnostics: Callable[[], str] | None = None,
) -> Health:
    """Poll ``check`` until it passes; fail at the deadline, or at once if the process died."""
    deadline = time.monotonic() + timeout
    while True:
        health = check()
        if health.ok:
            return health
        died = still_running is not None and not still_running()
        if died or time.monotonic() >= deadline:
            reason = "exited" if died else f"not ready after {timeout:.0f}s ({health.detail})"
            extra = diagnostics() if diagnostics is not None else ""
            raise NotReadyError(f"{what} {reason}" + (f"\n{extra}" if extra else ""))
        time.sleep(POLL_INTERVAL)
