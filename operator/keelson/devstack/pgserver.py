"""The machine's PostgreSQL server, set up for one stack: OS account, directories, initdb, health.

PostgreSQL refuses to run as root, so when the stack runs as root the server runs as an
unprivileged system user: ``keelson-pg`` if it exists, else the distribution's ``postgres``,
else ``keelson-pg``, created on first use. That user must be able to reach the data directory; a state directory below a
0700 one (``/root/...``, a ``mkdtemp`` directory) is out of its reach, so the server's
directories then live under /var/tmp and ``<state>/postgres/data`` is a symlink to them.
"""

import contextlib
import hashlib
import os
import pwd
import secrets
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from keelson.devstack import pgconfig
from keelson.devstack.kubeconfig import write_private
from keelson.devstack.probes import Health
from keelson.devstack.versions import POSTGRES_MAJOR

SYSTEM_USER = "keelson-pg"
DISTRIBUTION_USER = "postgres"
# Persists across reboots, unlike /tmp on many systems, so a stopped stack's data survives one.
RELOCATION_ROOT = Path("/var/tmp")


class PostgresSetupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int

    @property
    def is_me(self) -> bool:
        return self.uid == os.geteuid()

    def groups(self) -> set[int]:
        return {self.gid, *os.getgrouplist(self.name, self.gid)}


@dataclass(frozen=True)
class ServerDirs:
    data: Path
    sockets: Path


# --- the server's binaries --------------------------------------------------------------------


def bin_dir() -> Path:
    """``$KEELSON_POSTGRES_BIN``, else Debian's /usr/lib/postgresql/<major>/bin, else PATH's."""
    override = os.environ.get("KEELSON_POSTGRES_BIN")
    candidates = [Path(override)] if override else [Path(f"/usr/lib/postgresql/{POSTGRES_MAJOR}/bin")]
    on_path = shutil.which("postgres")
    if on_path and not override:
        candidates.append(Path(on_path).resolve().parent)
    for candidate in candidates:
        if all(os.access(candidate / tool, os.X_OK) for tool in ("postgres", "initdb", "psql")):
            return candidate
    raise PostgresSetupError(
        f"no PostgreSQL server found in {', '.join(map(str, candidates))} "
        "(set KEELSON_POSTGRES_BIN, or run `keelson dev up --no-postgres`)"
    )


def server_version(binaries: Path) -> str:
    """``15.18`` from ``postgres (PostgreSQL) 15.18 (Debian ...)``."""
    out = subprocess.run(
        [str(binaries / "postgres"), "--version"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    return out.split(")", 1)[-1].split()[0]


# --- the OS account ---------------------------------------------------------------------------


def _account(entry: pwd.struct_passwd) -> Account:
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def ensure_account(owner_uid: int | None = None) -> Account:
    """The account the server runs as: the data directory's owner if there is one already."""
    if owner_uid is not None:
        return _account(pwd.getpwuid(owner_uid))
    if os.geteuid() != 0:
        return _account(pwd.getpwuid(os.geteuid()))
    for name in (SYSTEM_USER, DISTRIBUTION_USER):
        with contextlib.suppress(KeyError):
            return _account(pwd.getpwnam(name))
    result = subprocess.run(
        [
            "useradd", "--system", "--user-group", "--no-create-home",
            "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
            "--comment", "keelson dev stack PostgreSQL", SYSTEM_USER,
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise PostgresSetupError(f"useradd {SYSTEM_USER} failed: {result.stderr.strip()}")
    return _account(pwd.getpwnam(SYSTEM_USER))


def may_enter(info: os.stat_result, uid: int, groups: set[int]) -> bool:
    """Whether a directory's mode bits let ``uid`` (in ``groups``) search it."""
    if uid == 0:
        return True
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def first_unsearchable(path: Path, account: Account) -> Path | None:
    """The first directory on the way to ``path`` that ``account`` may not enter, if any.

    Mode bits only: an ACL that would let it through is missed, which costs a relocation, not
    a failure.
    """
    groups = account.groups()
    for directory in [*reversed(path.parents), path]:
        if not may_enter(directory.stat(), account.uid, groups):
            return directory
    return None


# --- directories --------------------------------------------------------------------------------


def relocation_home(state_dir: Path) -> Path:
    """Where a stack's server directories go when its state dir is out of the account's reach."""
    key = hashlib.sha256(str(state_dir).encode()).hexdigest()[:16]
    return RELOCATION_ROOT / f"keelson-postgres-{os.geteuid()}" / key


def _owned_dir(path: Path, account: Account, mode: int = 0o700) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    if not account.is_me:
        os.chown(path, account.uid, account.gid)


def plan_dirs(base: Path, state_dir: Path, account: Account, port: int) -> ServerDirs:
    """Where the server's data and socket directories are, or will be once created.

    Decided once, at the first start, and remembered by the filesystem: a relocated stack
    has a ``<state>/postgres/data`` symlink, a local one a real directory.
    """
    link = base / "data"
    if link.is_symlink():
        home = link.resolve().parent
        return ServerDirs(home / "data", home / "run")
    local = ServerDirs(link, base / "run")
    if link.exists():
        return local
    too_long = len(str(pgconfig.socket_path(local.sockets, port))) > pgconfig.MAX_SOCKET_PATH
    # base itself is made enter-only for others by ensure_dirs, so the state dir decides.
    if too_long or first_unsearchable(state_dir, account) is not None:
        home = relocation_home(state_dir)
        return ServerDirs(home / "data", home / "run")
    return local


def ensure_dirs(base: Path, dirs: ServerDirs, account: Account) -> None:
    """Create the planned directories, owned by ``account``; link them in if relocated."""
    base.mkdir(parents=True, exist_ok=True)
    # Enter-only for others: the account passes through to data/ and run/, and lists nothing.
    base.chmod(0o711)
    link = base / "data"
    if dirs.data != link:
        home = dirs.data.parent
        home.parent.mkdir(parents=True, exist_ok=True)
        home.parent.chmod(0o711)
        _owned_dir(home, account)
        if not link.is_symlink():
            link.symlink_to(dirs.data)
    _owned_dir(dirs.data, account)
    _owned_dir(dirs.sockets, account)


def remove_relocated(base: Path) -> Path | None:
    """Delete the relocated server directories of a stack (at ``down``); the removed path, if any."""
    link = base / "data"
    if not link.is_symlink():
        return None
    home = link.resolve().parent
    # Only ever a directory this module made: never follow a symlink somewhere else.
    if home.parent.parent != RELOCATION_ROOT or not home.parent.name.startswith("keelson-postgres-"):
        return None
    shutil.rmtree(home, ignore_errors=True)
    return home


# --- the cluster ------------------------------------------------------------------------------


def ensure_password(path: Path) -> str:
    """The admin password, generated once per stack and kept in a 0600 file."""
    if path.is_file():
        return path.read_text().strip()
    password = secrets.token_urlsafe(24)
    write_private(path, password + "\n")
    return password


def initialized(dirs: ServerDirs) -> bool:
    return (dirs.data / "PG_VERSION").is_file()


def initdb(binaries: Path, dirs: ServerDirs, account: Account, password: str) -> None:
    """Create the cluster with the admin role; a half-made data directory is started over."""
    for leftover in dirs.data.iterdir():
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()
    # initdb runs as the account, so it cannot read the 0600 root-owned password file.
    password_file = dirs.sockets / ".initdb-password"
    write_private(password_file, password + "\n")
    try:
        if not account.is_me:
            os.chown(password_file, account.uid, account.gid)
        result = subprocess.run(
            pgconfig.initdb_argv(binaries, dirs.data, password_file),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=dirs.sockets,
            check=False,
            user=None if account.is_me else account.uid,
            group=None if account.is_me else account.gid,
            extra_groups=None if account.is_me else [],
        )
    finally:
        password_file.unlink(missing_ok=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise PostgresSetupError(f"initdb failed (exit {result.returncode}): {detail}")


def write_config(dirs: ServerDirs, account: Account) -> None:
    for name, text in (("postgresql.conf", pgconfig.POSTGRESQL_CONF), ("pg_hba.conf", pgconfig.PG_HBA_CONF)):
        path = dirs.data / name
        path.write_text(text)
        path.chmod(0o600)
        if not account.is_me:
            os.chown(path, account.uid, account.gid)


def prepare(binaries: Path, base: Path, dirs: ServerDirs, account: Account, password_file: Path) -> None:
    """Everything before a start: directories, the cluster on the first start, config files."""
    ensure_dirs(base, dirs, account)
    if not initialized(dirs):
        initdb(binaries, dirs, account, ensure_password(password_file))
    elif not password_file.is_file():
        raise PostgresSetupError(
            f"{dirs.data} holds a cluster but {password_file} is gone, and with it the admin password: "
            "`keelson dev down` and `up` again to start over"
        )
    write_config(dirs, account)


def data_owner(base: Path) -> int | None:
    """The uid that owns an existing data directory (the server must keep running as it)."""
    try:
        return (base / "data").stat().st_uid
    except FileNotFoundError:
        return None


def admin_health(binaries: Path, port: int, password: str, timeout: float = 3.0) -> Health:
    """A real admin login and query over TCP, the way the operator will connect."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PGPASSWORD": password,
        "PGCONNECT_TIMEOUT": str(max(1, int(timeout))),
    }
    try:
        result = subprocess.run(
            [str(binaries / "psql"), "-XAtq", "-c", "select 1", pgconfig.admin_conninfo(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout + 2,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return Health(False, str(error))
    if result.returncode == 0 and result.stdout.strip() == "1":
        return Health(True, "accepting admin logins")
    lines = (result.stderr or result.stdout).strip().splitlines()
    return Health(False, lines[-1] if lines else f"psql exited {result.returncode}")
