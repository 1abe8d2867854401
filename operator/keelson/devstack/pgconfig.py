"""PostgreSQL's files, command lines and connection strings for the stack's server.

Pure functions of the stack's ports, paths and admin password, so they can be read and
tested without a server.
"""

import base64
import urllib.parse
from pathlib import Path

import yaml

from keelson.devstack.ports import LOOPBACK

ADMIN_ROLE = "keelson_admin"
ADMIN_DATABASE = "postgres"
# What the example platform's MicroservicePlatform refers to for PostgreSQL administration.
ADMIN_SECRET_NAME = "pg-admin"
ADMIN_SECRET_NAMESPACE = "default"
# The kernel's limit on a unix socket path (sun_path is 108 bytes with the terminating NUL).
MAX_SOCKET_PATH = 107

# Settings for a throwaway development server. Written into the data directory before every
# start, so the file always matches this code. Port, socket directory and listen address are
# on the command line instead, where `ps` shows them.
POSTGRESQL_CONF = """\
# Written by `keelson dev up` before every start: change keelson/devstack/pgconfig.py, not this file.
max_connections = 100
shared_buffers = 128MB
password_encryption = 'scram-sha-256'
# Only the server's own OS user may use the socket; everyone else comes over TCP with a password.
unix_socket_permissions = 0700

# A development stack: losing the last commits on a power cut is fine, fsync latency is not. A
# crash of the server alone loses nothing (the WAL is still in the page cache).
fsync = off
synchronous_commit = off
full_page_writes = off

# Errors and warnings to stderr, which is the component log (logs/postgres.log).
log_destination = 'stderr'
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'

timezone = 'UTC'
datestyle = 'iso, ymd'
lc_messages = 'C'
lc_monetary = 'C'
lc_numeric = 'C'
lc_time = 'C'
default_text_search_config = 'pg_catalog.english'
"""

# Passwords (SCRAM) for everyone, over TCP on loopback and over the socket alike; no trust, no
# peer (root is never a PostgreSQL user), no other addresses.
PG_HBA_CONF = f"""\
# Written by `keelson dev up` before every start: change keelson/devstack/pgconfig.py, not this file.
# TYPE  DATABASE  USER  ADDRESS          METHOD
local   all       all                    scram-sha-256
host    all       all   {LOOPBACK}/32     scram-sha-256
"""


def socket_path(sockets: Path, port: int) -> Path:
    return sockets / f".s.PGSQL.{port}"


def initdb_argv(bin_dir: Path, data: Path, password_file: Path) -> list[str]:
    return [
        str(bin_dir / "initdb"),
        f"--pgdata={data}",
        f"--username={ADMIN_ROLE}",
        # Read from a file, never from the command line, where `ps` would show it.
        f"--pwfile={password_file}",
        "--auth=scram-sha-256",
        # C collation and UTF-8, whatever the machine's locale: the same server everywhere.
        "--no-locale",
        "--encoding=UTF8",
        "--no-sync",
        "--no-instructions",
    ]


def server_argv(bin_dir: Path, data: Path, sockets: Path, port: int) -> list[str]:
    """The server in the foreground (what ``pg_ctl start -o ...`` would run in the background)."""
    return [
        str(bin_dir / "postgres"),
        "-D",
        str(data),
        "-k",
        str(sockets),
        "-p",
        str(port),
        "-c",
        f"listen_addresses={LOOPBACK}",
    ]


def admin_uri(password: str, port: int) -> str:
    quoted = urllib.parse.quote(password, safe="")
    return f"postgresql://{ADMIN_ROLE}:{quoted}@{LOOPBACK}:{port}/{ADMIN_DATABASE}"


def admin_conninfo(port: int) -> str:
    """libpq keywords for the admin connection, without the password (that goes in PGPASSWORD)."""
    # No TLS on a loopback dev server: skip libpq's attempt at it.
    return f"host={LOOPBACK} port={port} user={ADMIN_ROLE} dbname={ADMIN_DATABASE} sslmode=disable"


def admin_secret_manifest(password: str, port: int, namespace: str = ADMIN_SECRET_NAMESPACE) -> str:
    """Secret <namespace>/pg-admin: the admin URI and its parts, for the operator to read."""
    values = {
        "uri": admin_uri(password, port),
        "host": LOOPBACK,
        "port": str(port),
        "user": ADMIN_ROLE,
        "password": password,
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": ADMIN_SECRET_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "keelson-dev"},
        },
        "type": "Opaque",
        # data, not stringData: server-side apply then owns exactly the fields it sends.
        "data": {key: base64.b64encode(value.encode()).decode("ascii") for key, value in values.items()},
    }
    return yaml.safe_dump(secret, sort_keys=False)
