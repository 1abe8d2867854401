"""The Kafka protocol probe: frames, parsing, and a fake broker on a loopback socket."""

import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from keelson.devstack import kafkaprobe


def _api_versions_body(ranges: dict[int, tuple[int, int]], error: int = 0) -> bytes:
    body = struct.pack(">hi", error, len(ranges))
    return body + b"".join(struct.pack(">hhh", key, low, high) for key, (low, high) in ranges.items())


def _string(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    return struct.pack(">h", len(value)) + value.encode()


def _metadata_body(brokers: list[tuple[int, str, int]]) -> bytes:
    body = struct.pack(">ii", 0, len(brokers))
    for node_id, host, port in brokers:
        body += struct.pack(">i", node_id) + _string(host) + struct.pack(">i", port) + _string(None)
    # cluster id, controller id, no topics
    return body + _string("abc") + struct.pack(">ii", 1, 0)


def test_request_frame_layout() -> None:
    frame = kafkaprobe.request_frame(18, 0, 7)
    size, key, version, correlation, client_len = struct.unpack_from(">ihhih", frame)
    assert (key, version, correlation) == (18, 0, 7)
    assert size == len(frame) - 4
    assert frame[14 : 14 + client_len] == kafkaprobe.CLIENT_ID.encode()


def test_metadata_request_asks_for_no_topics_and_never_creates_one() -> None:
    assert kafkaprobe.metadata_v4_body() == b"\x00\x00\x00\x00\x00"


def test_parse_api_versions() -> None:
    body = _api_versions_body({3: (4, 13), 18: (0, 4)})
    assert kafkaprobe.parse_api_versions_v0(body) == {3: (4, 13), 18: (0, 4)}
    with pytest.raises(kafkaprobe.ProtocolError, match="error code 35"):
        kafkaprobe.parse_api_versions_v0(_api_versions_body({}, error=35))
    with pytest.raises(kafkaprobe.ProtocolError, match="ends early"):
        kafkaprobe.parse_api_versions_v0(body[:-1])


def test_parse_metadata_brokers() -> None:
    brokers = kafkaprobe.parse_metadata_v4_brokers(_metadata_body([(1, "127.0.0.1", 9092)]))
    assert brokers == [kafkaprobe.Broker(1, "127.0.0.1", 9092)]
    assert kafkaprobe.parse_metadata_v4_brokers(_metadata_body([])) == []


Responder = Callable[[int, int], bytes | None]


@pytest.fixture
def fake_broker() -> Iterator[Callable[[Responder], int]]:
    """A one-connection server that answers each request with ``respond(api_key, version)``."""
    servers: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def serve(respond: Responder) -> int:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def run() -> None:
            conn, _ = server.accept()
            with conn:
                while True:
                    head = conn.recv(4)
                    if len(head) < 4:
                        return
                    (size,) = struct.unpack(">i", head)
                    request = b""
                    while len(request) < size:
                        request += conn.recv(size - len(request))
                    key, version, correlation = struct.unpack_from(">hhi", request)
                    body = respond(key, version)
                    if body is None:
                        return  # hang up, like a broker refusing an unsupported version
                    payload = struct.pack(">i", correlation) + body
                    conn.sendall(struct.pack(">i", len(payload)) + payload)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        return int(server.getsockname()[1])

    yield serve
    for server in servers:
        server.close()
    for thread in threads:
        thread.join(timeout=2)


def test_healthy_broker(fake_broker: Callable[[Responder], int]) -> None:
    def respond(key: int, version: int) -> bytes | None:
        if key == kafkaprobe.API_VERSIONS and version == 0:
            return _api_versions_body({3: (4, 13), 18: (0, 4)})
        if key == kafkaprobe.METADATA and version == 4:
            return _metadata_body([(1, "127.0.0.1", 9092)])
        return None

    health = kafkaprobe.broker_health("127.0.0.1", fake_broker(respond))
    assert health.ok, health.detail
    assert "1@127.0.0.1:9092" in health.detail


def test_a_broker_without_registered_brokers_is_not_ready(fake_broker: Callable[[Responder], int]) -> None:
    def respond(key: int, version: int) -> bytes | None:
        return _api_versions_body({3: (4, 13)}) if key == kafkaprobe.API_VERSIONS else _metadata_body([])

    health = kafkaprobe.broker_health("127.0.0.1", fake_broker(respond))
    assert not health.ok
    assert "no broker" in health.detail


def test_a_listener_that_serves_no_metadata_is_not_a_broker(fake_broker: Callable[[Responder], int]) -> None:
    # What the KRaft controller listener answers: ApiVersions, but no Metadata.
    health = kafkaprobe.broker_health("127.0.0.1", fake_broker(lambda key, version: _api_versions_body({55: (0, 1)})))
    assert not health.ok
    assert "Metadata" in health.detail


def test_a_hang_up_or_a_closed_port_is_unhealthy(fake_broker: Callable[[Responder], int]) -> None:
    assert not kafkaprobe.broker_health("127.0.0.1", fake_broker(lambda key, version: None)).ok
    closed = socket.create_server(("127.0.0.1", 0))
    port = int(closed.getsockname()[1])
    closed.close()
    assert not kafkaprobe.broker_health("127.0.0.1", port, timeout=0.5).ok
