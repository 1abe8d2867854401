"""The metrics port: /readyz answers from the controller's flag, everything else is metrics."""

from __future__ import annotations

from typing import Any

from keelson.controller import endpoints


def _get(path: str, ready: bool) -> tuple[str, bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    body = b"".join(endpoints.app(lambda: ready)({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, start_response))
    return seen["status"], body


def test_readyz_follows_the_flag() -> None:
    assert _get("/readyz", True) == ("200 OK", b"ok\n")
    assert _get("/readyz", False)[0] == "503 Service Unavailable"


def test_other_paths_serve_the_metrics_whatever_the_readiness() -> None:
    status, body = _get("/metrics", False)
    assert status.startswith("200") and b"# HELP" in body
