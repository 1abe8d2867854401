"""Just enough of the Kafka protocol to tell that a broker serves requests.

An open port only says the JVM bound a socket; a broker answers ApiVersions and lists itself
in a Metadata response only once it has joined its own KRaft quorum and is ready for clients.
Raw frames over a socket keep the dev stack free of a Kafka client dependency.
"""

import itertools
import socket
import struct
from dataclasses import dataclass

from keelson.devstack.probes import Health

API_VERSIONS = 18
METADATA = 3
# Kafka 4 dropped Metadata v0-v3 (KIP-896); v4 is the oldest left and not yet "flexible", so
# its frames are plain. ApiVersions v0 is kept forever: it is how clients discover versions.
METADATA_VERSION = 4
CLIENT_ID = "keelson-dev-probe"
_MAX_RESPONSE = 1 << 20

_correlation = itertools.count(1)


class ProtocolError(ValueError):
    """The bytes that came back are not the answer we asked for."""


@dataclass(frozen=True)
class Broker:
    node_id: int
    host: str
    port: int


# --- encoding and decoding (pure) -------------------------------------------------------------


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def request_frame(api_key: int, api_version: int, correlation_id: int, body: bytes = b"") -> bytes:
    """A size-prefixed request with a v1 header (api key, version, correlation id, client id)."""
    payload = struct.pack(">hhi", api_key, api_version, correlation_id) + _string(CLIENT_ID) + body
    return struct.pack(">i", len(payload)) + payload


def metadata_v4_body() -> bytes:
    # An empty topic array asks for no topics (a null one would ask for all of them), which keeps
    # the answer small; auto-creation off, so a probe can never create anything.
    return struct.pack(">ib", 0, 0)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def take(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self._at + size > len(self._data):
            raise ProtocolError("response ends early")
        (value,) = struct.unpack_from(fmt, self._data, self._at)
        self._at += size
        return int(value)

    def string(self) -> str | None:
        length = self.take(">h")
        if length < 0:
            return None
        if self._at + length > len(self._data):
            raise ProtocolError("response ends early")
        value = self._data[self._at : self._at + length].decode(errors="replace")
        self._at += length
        return value


def parse_api_versions_v0(body: bytes) -> dict[int, tuple[int, int]]:
    """The supported (min, max) version of each API key; raises on an error code."""
    reader = _Reader(body)
    error = reader.take(">h")
    if error != 0:
        raise ProtocolError(f"ApiVersions error code {error}")
    supported: dict[int, tuple[int, int]] = {}
    for _ in range(reader.take(">i")):
        key, low, high = reader.take(">h"), reader.take(">h"), reader.take(">h")
        supported[key] = (low, high)
    return supported


def parse_metadata_v4_brokers(body: bytes) -> list[Broker]:
    """The brokers a Metadata v4 response lists (the rest of it is not needed)."""
    reader = _Reader(body)
    reader.take(">i")  # throttle time
    brokers = []
    for _ in range(reader.take(">i")):
        node_id = reader.take(">i")
        host = reader.string() or ""
        port = reader.take(">i")
        reader.string()  # rack
        brokers.append(Broker(node_id, host, port))
    return brokers


# --- talking to a broker ----------------------------------------------------------------------


def _read_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = sock.recv(min(size, 65536))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _call(sock: socket.socket, api_key: int, api_version: int, body: bytes = b"") -> bytes:
    """Send one request and return the response body after its (v0) header."""
    correlation_id = next(_correlation) & 0x7FFFFFFF
    sock.sendall(request_frame(api_key, api_version, correlation_id, body))
    (size,) = struct.unpack(">i", _read_exact(sock, 4))
    if not 4 <= size <= _MAX_RESPONSE:
        raise ProtocolError(f"implausible response size {size}")
    response = _read_exact(sock, size)
    (answered,) = struct.unpack_from(">i", response)
    if answered != correlation_id:
        raise ProtocolError(f"correlation id {answered}, expected {correlation_id}")
    return response[4:]


def broker_health(host: str, port: int, timeout: float = 2.0) -> Health:
    """Healthy when the broker answers ApiVersions and lists at least one broker in Metadata."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            supported = parse_api_versions_v0(_call(sock, API_VERSIONS, 0))
            low, high = supported.get(METADATA, (0, -1))
            if not low <= METADATA_VERSION <= high:
                return Health(False, f"broker serves Metadata v{low}-v{high}, not v{METADATA_VERSION}")
            brokers = parse_metadata_v4_brokers(_call(sock, METADATA, METADATA_VERSION, metadata_v4_body()))
    except (OSError, ProtocolError) as error:
        return Health(False, str(error) or type(error).__name__)
    if not brokers:
        return Health(False, "no broker registered yet")
    listed = ", ".join(f"{b.node_id}@{b.host}:{b.port}" for b in brokers)
    return Health(True, f"serving, brokers {listed}")
