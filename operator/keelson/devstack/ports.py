"""Loopback ports, chosen once per stack and kept in its stack.json.

Ports are picked at the first ``up`` and reused on every later one, so kubeconfigs and URLs
stay valid across restarts. They are picked *below the kernel's ephemeral range*
(``net.ipv4.ip_local_port_range``), never by binding to port 0: a port from that range is one
the kernel may hand to any outgoing connection while its server is down (a restarted
kube-apiserver then fails with "bind: address already in use", seen in CI). A machine-wide claims file records every
stack's ports: a stopped stack's ports are not listened on, so the kernel would happily hand
them to a second stack, which would then collide with the first when it comes back.
"""

import contextlib
import fcntl
import json
import os
import random
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

from keelson.devstack import stackfile

LOOPBACK = "127.0.0.1"

# Every port a stack may ever use. Allocated all at once at the first `up`, so that turning
# a service on later does not move the others.
PORT_NAMES: tuple[str, ...] = (
    "etcd-client",
    "etcd-peer",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "operator-metrics",
    "operator-health",
    "operator-2-metrics",
    "operator-2-health",
    "operator-webhook",
    "operator-2-webhook",
    "kafka",
    "kafka-controller",
    "postgres",
)


def default_claims_file() -> Path:
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "keelson" / "port-claims.json"


@contextlib.contextmanager
def _locked_claims(claims_file: Path) -> Iterator[dict[str, list[int]]]:
    """The claims, under an exclusive lock, written back on exit."""
    claims_file.parent.mkdir(parents=True, exist_ok=True)
    with (claims_file.parent / f".{claims_file.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            raw = json.loads(claims_file.read_text())
            claims = {str(k): [int(p) for p in v] for k, v in raw.items()} if isinstance(raw, dict) else {}
        except (OSError, ValueError, TypeError, AttributeError):
            claims = {}  # missing or damaged: start over; live stacks re-claim on their next `up`
        yield claims
        tmp = claims_file.with_name(f".{claims_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(claims, indent=2, sort_keys=True) + "\n")
        tmp.replace(claims_file)


# Used when the ephemeral range cannot be read; Linux's default.
_DEFAULT_EPHEMERAL = (32768, 60999)
# Below this are well-known and registered ports other software on a machine expects to get.
_LOWEST = 10000


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports."""
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL
    return low, high


def _candidates() -> list[int]:
    """Ports outside the ephemeral range, in random order (two stacks rarely start alike)."""
    low, high = ephemeral_range()
    ports = [*range(_LOWEST, max(_LOWEST, low)), *range(high + 1, 65536)]
    random.shuffle(ports)
    return ports


def _bind_loopback(port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((LOOPBACK, port))
    except OSError:
        sock.close()
        return None
    return sock


def _free_ports(count: int, avoid: set[int]) -> list[int]:
    """``count`` distinct ports the kernel says are free now, none of them in ``avoid``."""
    held: list[socket.socket] = []
    try:
        # Keep the chosen sockets bound until all are chosen, so none is chosen twice.
        for port in _candidates():
            if len(held) == count:
                break
            if port in avoid:
                continue
            sock = _bind_loopback(port)
            if sock is not None:
                held.append(sock)
        if len(held) == count:
            return [int(sock.getsockname()[1]) for sock in held]
    finally:
        for sock in held:
            sock.close()
    raise RuntimeError("could not find enough free loopback ports outside the ephemeral range")


def free_port() -> int:
    """One loopback port that is free now and that no outgoing connection will take.

    For a server that is stopped and started again on the same port (tests that restart
    services); not claimed machine-wide, so only for short-lived use."""
    return _free_ports(1, set())[0]


def ensure_ports(
    state_dir: Path, names: Iterable[str] = PORT_NAMES, *, claims_file: Path | None = None
) -> dict[str, int]:
    """This stack's ports by name: the persisted ones, plus fresh ones for any new names."""
    claims_path = claims_file or default_claims_file()
    key = str(state_dir.resolve())
    with _locked_claims(claims_path) as claims:
        # Forget stacks whose state dir is gone (removed by `down`, or by hand).
        for other in [k for k in claims if k != key and not stackfile.stack_file(Path(k)).exists()]:
            del claims[other]
        data = stackfile.load(state_dir)
        ports: dict[str, int] = {str(k): int(v) for k, v in data.get("ports", {}).items()}
        missing = [name for name in names if name not in ports]
        if missing:
            taken = {port for k, claimed in claims.items() if k != key for port in claimed}
            taken |= set(ports.values())
            ports.update(zip(missing, _free_ports(len(missing), taken), strict=True))
            data["ports"] = ports
            stackfile.save(state_dir, data)
        claims[key] = sorted(ports.values())
    return ports


def release_ports(state_dir: Path, *, claims_file: Path | None = None) -> None:
    """Drop this stack's claim (at ``down``)."""
    with _locked_claims(claims_file or default_claims_file()) as claims:
        claims.pop(str(state_dir.resolve()), None)
