"""The metrics port: Prometheus' `/metrics`, and `/readyz` for the readiness probe.

Liveness is kopf's `/healthz` on the health port (the event loop answers, the workers run);
readiness is a different question, "could this replica lead now", and must be true on a healthy
standby too (see the chart's PodDisruptionBudget), so it gets its own path. It is served from
the metrics server's thread and only reads a flag the event loop keeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes and scrapes every few seconds are not worth a log line."""


def app(ready: Callable[[], bool]) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app()

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/readyz":
            ok = ready()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"not ready\n"]
        result: Iterable[bytes] = metrics(environ, start_response)
        return result

    return serve


def start(port: int, addr: str, ready: Callable[[], bool]) -> WSGIServer:
    server = make_server(addr, port, app(ready), server_class=_Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
