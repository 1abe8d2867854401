"""Run the stack's daemons as detached processes that outlive the ``keelson dev up`` command.

Each process gets its own session (so Ctrl-C in the terminal that ran ``up`` does not reach
it, and so its whole process group can be signalled), a log at ``<state>/logs/<name>.log``
and a pid file at ``<state>/pids/<name>.pid``. The pid file also records the process's start
time from /proc: a pid reused by an unrelated process after a reboot is then not mistaken
for ours, and never signalled.
"""

import atexit
import contextlib
import json
import os
import select
import signal
import subprocess
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Popen objects of children started by this interpreter, kept so that they are reaped
# (no zombies while a long-lived test process restarts components) and so that their
# destructor does not warn about a child that is meant to keep running.
_children: dict[int, "subprocess.Popen[bytes]"] = {}


@atexit.register
def _leave_children_running() -> None:
    """The stack's daemons outlive this interpreter on purpose (`keelson dev up` returns, a test
    session ends, the stack stays up): their Popen objects, collected at exit, must not report
    them as leaked ("subprocess N is still running", an error under `-W error`)."""
    warnings.filterwarnings("ignore", message=r"subprocess \d+ is still running", category=ResourceWarning)
    _children.clear()


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    start_time: str | None
    argv: list[str]


def log_path(state_dir: Path, name: str) -> Path:
    return state_dir / "logs" / f"{name}.log"


def pid_path(state_dir: Path, name: str) -> Path:
    return state_dir / "pids" / f"{name}.pid"


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19]


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].startswith("Z")


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def read_record(state_dir: Path, name: str) -> ProcessRecord | None:
    try:
        data = json.loads(pid_path(state_dir, name).read_text())
        return ProcessRecord(pid=int(data["pid"]), start_time=data.get("start_time"), argv=list(data["argv"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _record_alive(record: ProcessRecord) -> bool:
    _reap(record.pid)
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else: the start time check decides
    if _is_zombie(record.pid):
        return False
    # A different start time means the pid now belongs to another process.
    return record.start_time is None or _start_time(record.pid) == record.start_time


def alive(state_dir: Path, name: str) -> bool:
    record = read_record(state_dir, name)
    return record is not None and _record_alive(record)


def running_names(state_dir: Path) -> list[str]:
    """Names of every process with a pid file, alive or not."""
    pids = state_dir / "pids"
    return sorted(path.stem for path in pids.glob("*.pid")) if pids.is_dir() else []


def start(
    state_dir: Path,
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: int | None = None,
    group: int | None = None,
) -> ProcessRecord:
    """Start ``argv`` detached; its output is appended to its log. Returns its record.

    ``user``/``group`` run it as another OS account (with no supplementary groups), which
    only root may ask for: PostgreSQL refuses to run as root.
    """
    log = log_path(state_dir, name)
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file = pid_path(state_dir, name)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n==> {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        out.flush()
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            user=user,
            group=group,
            extra_groups=[] if user is not None else None,
        )
    _children[child.pid] = child
    record = ProcessRecord(pid=child.pid, start_time=_start_time(child.pid), argv=list(argv))
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": record.pid, "start_time": record.start_time, "argv": record.argv}))
    tmp.replace(pid_file)
    return record


def _signal_group(record: ProcessRecord, sig: signal.Signals) -> None:
    # The process leads its own session, so its group id is its pid; signalling the group
    # also reaches anything it spawned.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(record.pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(record.pid, sig)


def _wait_dead(record: ProcessRecord, deadline: float) -> bool:
    """Block until the process exits or the deadline passes; no sleeping in a loop."""
    if not _record_alive(record):
        return True
    child = _children.get(record.pid)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
    else:
        # Not our child (started by an earlier `keelson dev up`): a pidfd becomes readable
        # when the process exits.
        try:
            fd = os.pidfd_open(record.pid)
        except ProcessLookupError:
            return True
        try:
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        finally:
            os.close(fd)
    return not _record_alive(record)


def stop(state_dir: Path, name: str, *, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> bool:
    """Signal the process, then SIGKILL it if it outlives ``timeout``. True if it was running."""
    record = read_record(state_dir, name)
    was_alive = record is not None and _record_alive(record)
    if record is not None and was_alive:
        _signal_group(record, sig)
        if not _wait_dead(record, time.monotonic() + timeout):
            _signal_group(record, signal.SIGKILL)
            _wait_dead(record, time.monotonic() + 5.0)
    pid_path(state_dir, name).unlink(missing_ok=True)
    return was_alive


def kill(state_dir: Path, name: str, sig: signal.Signals) -> bool:
    """Send ``sig`` without waiting (e.g. SIGKILL to simulate a crash). True if it was running."""
    record = read_record(state_dir, name)
    if record is None or not _record_alive(record):
        return False
    _signal_group(record, sig)
    return True


def wait_exit(state_dir: Path, name: str, timeout: float) -> bool:
    """Wait until the process is gone. True if it exited within ``timeout``."""
    record = read_record(state_dir, name)
    return record is None or _wait_dead(record, time.monotonic() + timeout)


def log_tail(state_dir: Path, name: str, lines: int = 30) -> str:
    try:
        text = log_path(state_dir, name).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
