"""Detached processes: pid files, logs, stop with a deadline, pid reuse."""

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from keelson.devstack import processes

# Waits for a signal without using CPU; prints first so the log has something in it.
SLEEPER = [sys.executable, "-c", "import signal; print('up', flush=True); signal.pause()"]
# Ignores SIGTERM, so only the SIGKILL after the deadline ends it.
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); signal.pause()",
]


def test_start_alive_stop(tmp_path: Path) -> None:
    record = processes.start(tmp_path, "sleeper", SLEEPER)
    try:
        assert processes.alive(tmp_path, "sleeper")
        saved = json.loads(processes.pid_path(tmp_path, "sleeper").read_text())
        assert saved["pid"] == record.pid
        assert saved["argv"] == SLEEPER
        assert processes.running_names(tmp_path) == ["sleeper"]
    finally:
        assert processes.stop(tmp_path, "sleeper", timeout=10)
    assert not processes.alive(tmp_path, "sleeper")
    assert not processes.pid_path(tmp_path, "sleeper").exists()
    assert "starting:" in processes.log_path(tmp_path, "sleeper").read_text()
    # Stopping what is not running is fine, and says so.
    assert not processes.stop(tmp_path, "sleeper")


def test_sigkill_after_the_deadline(tmp_path: Path) -> None:
    processes.start(tmp_path, "stubborn", STUBBORN)
    # Only signal once the child has installed its SIGTERM handler.
    log = processes.log_path(tmp_path, "stubborn")
    assert processes.wait_exit(tmp_path, "stubborn", timeout=0) is False
    while "ready" not in log.read_text():
        pass
    assert processes.stop(tmp_path, "stubborn", sig=signal.SIGTERM, timeout=0.3)
    assert not processes.alive(tmp_path, "stubborn")


def test_a_reused_pid_is_not_ours(tmp_path: Path) -> None:
    record = processes.start(tmp_path, "sleeper", SLEEPER)
    try:
        pid_file = processes.pid_path(tmp_path, "sleeper")
        data = json.loads(pid_file.read_text())
        data["start_time"] = "1"  # as if the pid had been recycled after a reboot
        pid_file.write_text(json.dumps(data))
        assert not processes.alive(tmp_path, "sleeper")
        # ...and so it is never signalled.
        assert not processes.kill(tmp_path, "sleeper", signal.SIGKILL)
    finally:
        pid_file.write_text(json.dumps({**data, "start_time": record.start_time}))
        processes.stop(tmp_path, "sleeper", timeout=10)


def test_garbage_pid_file(tmp_path: Path) -> None:
    path = processes.pid_path(tmp_path, "x")
    path.parent.mkdir(parents=True)
    path.write_text("not json")
    assert processes.read_record(tmp_path, "x") is None
    assert not processes.alive(tmp_path, "x")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may start a process as another user")
def test_start_as_another_user(tmp_path: Path) -> None:
    # PostgreSQL's way: root starts it as an unprivileged account.
    tmp_path.chmod(0o755)
    processes.start(tmp_path, "whoami", ["/bin/sh", "-c", "id -u; id -G"], user=65534, group=65534)
    assert processes.wait_exit(tmp_path, "whoami", timeout=10)
    lines = processes.log_path(tmp_path, "whoami").read_text().splitlines()
    assert lines[-2:] == ["65534", "65534"]
