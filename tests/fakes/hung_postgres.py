"""A PostgreSQL server that hangs: it accepts TCP connections and then never answers.

`mode="silent"` never says a word (a black hole behind a load balancer); `mode="after_login"`
lets the client log in (trust authentication, ReadyForQuery) and then never answers a query
(a server stuck on a lock, a full disk, a stopped process). Threads, so a sync cluster test and
an async unit test can both use it.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from types import TracebackType
from typing import Literal

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102


def _message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


class _Handler(socketserver.BaseRequestHandler):
    server: HungPostgres._Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        self.server.owner.connections += 1
        if self.server.owner.mode == "after_login" and self._login(sock):
            self.server.owner.logins += 1
        # Hold the connection open, reading and ignoring whatever arrives, until the client or
        # the test goes away.
        while not self.server.owner.stopping.is_set():
            try:
                sock.settimeout(0.2)
                if sock.recv(65536) == b"":
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _read_packet(self, sock: socket.socket) -> bytes:
        head = self._exactly(sock, 4)
        (length,) = struct.unpack("!I", head)
        return self._exactly(sock, length - 4)

    def _exactly(self, sock: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def _login(self, sock: socket.socket) -> bool:
        try:
            while True:
                packet = self._read_packet(sock)
                (code,) = struct.unpack("!I", packet[:4])
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    sock.sendall(b"N")  # no TLS, no GSS: go on in the clear
                    continue
                if code == CANCEL_REQUEST:
                    return False
                break  # the StartupMessage
            sock.sendall(
                _message(b"R", struct.pack("!I", 0))  # AuthenticationOk
                + _message(b"S", b"server_version\x0015.0\x00")
                + _message(b"S", b"client_encoding\x00UTF8\x00")
                + _message(b"K", struct.pack("!II", 4242, 1))  # BackendKeyData
                + _message(b"Z", b"I")  # ReadyForQuery, idle
            )
            return True
        except (ConnectionError, OSError):
            return False


class HungPostgres:
    class _Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        owner: HungPostgres

    def __init__(self, mode: Literal["silent", "after_login"] = "after_login") -> None:
        self.mode = mode
        self.connections = 0
        self.logins = 0
        self.stopping = threading.Event()
        self._server = self._Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def uri(self) -> str:
        return f"postgresql://admin:secret@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def __enter__(self) -> HungPostgres:
        self._thread.start()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
