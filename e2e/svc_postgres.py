"""PostgreSQL for the services' tests: the server at KEELSON_POSTGRES_ADMIN_URI (the local
stack's, `keelson dev env` exports it), else a throwaway server of the machine's PostgreSQL in
/tmp, started once per test session. Each test gets a database of its own."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from keelson.devstack import pgserver, ports

ADMIN_URI_ENV = "KEELSON_POSTGRES_ADMIN_URI"
_started: dict[str, str] = {}


def _throwaway_server() -> str:
    """Start a server owned by an unprivileged user (PostgreSQL refuses to run as root)."""
    if "uri" in _started:
        return _started["uri"]
    binaries = pgserver.bin_dir()  # fails loudly: these tests must not pass by not running
    # The local stack's choice of OS account (postgres refuses to run as root).
    account = pgserver.ensure_account()
    base = Path(tempfile.mkdtemp(prefix="keelson-svc-pg-", dir="/tmp"))
    if not account.is_me:
        os.chown(base, account.uid, account.gid)
    user = None if account.is_me else account.name
    data, port = base / "data", ports.free_port()

    def run(*command: str) -> None:
        subprocess.run(command, user=user, check=True, capture_output=True, timeout=120)

    run(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    options = f"-k {base} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    run(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start")

    def stop() -> None:
        subprocess.run(
            [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            user=user, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)

    atexit.register(stop)
    _started["uri"] = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    return _started["uri"]


def admin_uri() -> str:
    return os.environ.get(ADMIN_URI_ENV) or _throwaway_server()


def with_database(uri: str, dbname: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path="/" + dbname))


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new, empty database; dropped afterwards."""
    admin = admin_uri()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
