"""Ports are chosen once per stack, persisted, and never shared between stacks."""

import json
import socket
from pathlib import Path

import pytest

from keelson.devstack import ports, stackfile


def test_ports_are_persisted_and_reused(tmp_path: Path) -> None:
    claims = tmp_path / "claims.json"
    state = tmp_path / "stack"
    first = ports.ensure_ports(state, ("a", "b", "c"), claims_file=claims)
    assert set(first) == {"a", "b", "c"}
    assert len(set(first.values())) == 3
    assert json.loads((state / "stack.json").read_text())["ports"] == first
    assert ports.ensure_ports(state, ("a", "b", "c"), claims_file=claims) == first


def test_a_new_port_name_does_not_move_the_others(tmp_path: Path) -> None:
    claims = tmp_path / "claims.json"
    state = tmp_path / "stack"
    first = ports.ensure_ports(state, ("a", "b"), claims_file=claims)
    second = ports.ensure_ports(state, ("a", "b", "c"), claims_file=claims)
    assert {k: second[k] for k in ("a", "b")} == first
    assert second["c"] not in first.values()


def test_other_keys_of_stack_json_survive(tmp_path: Path) -> None:
    state = tmp_path / "stack"
    stackfile.update(state, services={"kafka": "off"})
    ports.ensure_ports(state, ("a",), claims_file=tmp_path / "claims.json")
    assert stackfile.load(state)["services"] == {"kafka": "off"}


def test_two_stacks_never_share_a_port(tmp_path: Path) -> None:
    claims = tmp_path / "claims.json"
    one = ports.ensure_ports(tmp_path / "one", ports.PORT_NAMES, claims_file=claims)
    two = ports.ensure_ports(tmp_path / "two", ports.PORT_NAMES, claims_file=claims)
    assert not set(one.values()) & set(two.values())
    recorded = json.loads(claims.read_text())
    assert sorted(one.values()) == recorded[str((tmp_path / "one").resolve())]


class _FakeSocket:
    def __init__(self, port: int) -> None:
        self.port = port

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def close(self) -> None:
        pass


def test_claimed_ports_of_a_stopped_stack_are_avoided(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stopped stack listens on nothing, so the kernel would offer its ports again: only the
    # claims file protects them.
    claims = tmp_path / "claims.json"
    other = tmp_path / "other"
    stackfile.save(other, {"ports": {"etcd-client": 20001}})
    claims.write_text(json.dumps({str(other.resolve()): [20001]}))
    monkeypatch.setattr(ports, "_candidates", lambda: [20001, 20002, 20003])
    monkeypatch.setattr(ports, "_bind_loopback", _FakeSocket)
    assert ports.ensure_ports(tmp_path / "mine", ("a", "b"), claims_file=claims) == {"a": 20002, "b": 20003}


def test_release_and_pruning(tmp_path: Path) -> None:
    claims = tmp_path / "claims.json"
    ports.ensure_ports(tmp_path / "one", ("a",), claims_file=claims)
    ports.ensure_ports(tmp_path / "gone", ("a",), claims_file=claims)
    ports.release_ports(tmp_path / "one", claims_file=claims)
    assert str((tmp_path / "one").resolve()) not in json.loads(claims.read_text())
    # A stack whose state dir disappeared without `down` is forgotten at the next allocation.
    (tmp_path / "gone" / "stack.json").unlink()
    ports.ensure_ports(tmp_path / "three", ("a",), claims_file=claims)
    assert list(json.loads(claims.read_text())) == [str((tmp_path / "three").resolve())]


def test_ports_are_never_in_the_ephemeral_range(tmp_path: Path) -> None:
    # The kernel hands ephemeral ports to outgoing connections: a stopped server's port from
    # that range may be taken when it restarts (CI saw kube-apiserver fail to bind).
    low, high = ports.ephemeral_range()
    chosen = ports.ensure_ports(tmp_path / "one", ports.PORT_NAMES, claims_file=tmp_path / "claims.json")
    assert all(not low <= port <= high for port in chosen.values()), chosen
    assert all(not low <= ports.free_port() <= high for _ in range(50))


def test_a_port_in_use_is_never_chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        taken = busy.getsockname()[1]
        busy.listen()
        monkeypatch.setattr(ports, "_candidates", lambda: [taken, 20005])
        assert ports.free_port() == 20005
