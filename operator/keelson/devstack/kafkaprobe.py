"""Just enough of the Kafka protocol to tell that a broker serves requests.

An open port only says the JVM bound a socket; a broker answers ApiVersions and lists itself
in a Metadata response only once it has joined its own KRaft quorum and is ready for clients.
Raw frames over a socket keep the dev stack free of a Kafka client dependency; on a SASL_SSL
listener, over TLS and after a SCRAM-SHA-512 exchange (RFC 5802), since Metadata needs a user.
"""

import base64
import contextlib
import hashlib
import hmac
import itertools
import secrets
import socket
import ssl
import struct
from dataclasses import dataclass, field

from keelson.devstack.probes import Health

API_VERSIONS = 18
METADATA = 3
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
SCRAM_MECHANISM = "SCRAM-SHA-512"
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

    def raw(self, length: int) -> bytes:
        if self._at + length > len(self._data):
            raise ProtocolError("response ends early")
        value = self._data[self._at : self._at + length]
        self._at += length
        return value

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


def _bytes(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


def parse_sasl_handshake(body: bytes) -> list[str]:
    reader = _Reader(body)
    error = reader.take(">h")
    mechanisms = [reader.string() or "" for _ in range(reader.take(">i"))]
    if error != 0:
        raise ProtocolError(f"SaslHandshake error code {error}; the broker offers {', '.join(mechanisms)}")
    return mechanisms


def parse_sasl_authenticate(body: bytes) -> bytes:
    reader = _Reader(body)
    error = reader.take(">h")
    message = reader.string()
    if error != 0:
        raise ProtocolError(f"authentication failed (error code {error}): {message or ''}".strip())
    length = reader.take(">i")
    return reader.raw(max(length, 0))


@dataclass(frozen=True)
class Scram:
    """The client side of SCRAM-SHA-512, without channel binding."""

    user: str
    password: str = field(repr=False)
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    @property
    def client_first_bare(self) -> str:
        name = self.user.replace("=", "=3D").replace(",", "=2C")
        return f"n={name},r={self.nonce}"

    def client_first(self) -> bytes:
        return f"n,,{self.client_first_bare}".encode()

    def client_final(self, server_first: bytes) -> bytes:
        text = server_first.decode()
        attrs = dict(part.split("=", 1) for part in text.split(","))
        if not attrs.get("r", "").startswith(self.nonce):
            raise ProtocolError("SCRAM: the server's nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac("sha512", self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha512).digest()
        stored_key = hashlib.sha512(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{self.client_first_bare},{text},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha512).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


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


def _authenticate(sock: socket.socket, supported: dict[int, tuple[int, int]], scram: Scram) -> None:
    offered = parse_sasl_handshake(_call(sock, SASL_HANDSHAKE, 1, _string(SCRAM_MECHANISM)))
    if SCRAM_MECHANISM not in offered:
        raise ProtocolError(f"the broker offers {', '.join(offered)}, not {SCRAM_MECHANISM}")
    low, high = supported.get(SASL_AUTHENTICATE, (0, -1))
    if not low <= 1:  # v2 and later are "flexible": other frames
        raise ProtocolError(f"broker serves SaslAuthenticate v{low}-v{high}, not v0 or v1")
    version = min(high, 1)
    server_first = parse_sasl_authenticate(_call(sock, SASL_AUTHENTICATE, version, _bytes(scram.client_first())))
    parse_sasl_authenticate(_call(sock, SASL_AUTHENTICATE, version, _bytes(scram.client_final(server_first))))


def broker_health(
    host: str,
    port: int,
    timeout: float = 2.0,
    *,
    tls: ssl.SSLContext | None = None,
    user: tuple[str, str] | None = None,
) -> Health:
    """Healthy when the broker answers ApiVersions and lists at least one broker in Metadata (over
    TLS with `tls`, as `user` (name, password) with SCRAM-SHA-512)."""
    try:
        with contextlib.ExitStack() as closing:
            sock = closing.enter_context(socket.create_connection((host, port), timeout=timeout))
            if tls is not None:
                sock = closing.enter_context(tls.wrap_socket(sock, server_hostname=host))
            supported = parse_api_versions_v0(_call(sock, API_VERSIONS, 0))
            if user is not None:
                _authenticate(sock, supported, Scram(*user))
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
