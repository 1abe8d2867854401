"""PostgreSQL's config files, command lines, admin URI and admin Secret, without a server."""

import base64
import urllib.parse
from pathlib import Path

import yaml

from keelson.devstack import pgconfig


def _hba_rules() -> list[list[str]]:
    return [line.split() for line in pgconfig.PG_HBA_CONF.splitlines() if line and not line.startswith("#")]


def test_hba_asks_everyone_for_a_scram_password_and_knows_only_loopback() -> None:
    assert _hba_rules() == [
        ["local", "all", "all", "scram-sha-256"],
        ["host", "all", "all", "127.0.0.1/32", "scram-sha-256"],
    ]
    for method in ("trust", "peer", "md5", "password", "0.0.0.0", "::"):
        assert method not in pgconfig.PG_HBA_CONF.split()


def _conf() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in pgconfig.POSTGRESQL_CONF.splitlines()
        if line.strip() and not line.startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


def test_conf_is_a_fast_development_server_logging_to_stderr() -> None:
    conf = _conf()
    assert conf["password_encryption"] == "'scram-sha-256'"
    assert conf["fsync"] == "off"
    assert conf["log_destination"] == "'stderr'"
    assert conf["logging_collector"] == "off"
    assert conf["unix_socket_permissions"] == "0700"
    # Address, port and socket directory are the command line's, where `ps` shows them.
    assert not {"listen_addresses", "port", "unix_socket_directories"} & set(conf)


def test_server_argv_listens_on_loopback_only() -> None:
    argv = pgconfig.server_argv(Path("/pg/bin"), Path("/s/data"), Path("/s/run"), 5433)
    assert argv == [
        "/pg/bin/postgres", "-D", "/s/data", "-k", "/s/run", "-p", "5433", "-c", "listen_addresses=127.0.0.1",
    ]  # fmt: skip


def test_initdb_takes_the_password_from_a_file() -> None:
    argv = pgconfig.initdb_argv(Path("/pg/bin"), Path("/s/data"), Path("/s/run/pw"))
    assert argv[0] == "/pg/bin/initdb"
    assert "--pwfile=/s/run/pw" in argv
    assert "--username=keelson_admin" in argv
    assert "--auth=scram-sha-256" in argv
    assert "--pgdata=/s/data" in argv


def test_admin_uri_quotes_the_password() -> None:
    uri = pgconfig.admin_uri("p@ss:/word%", 5433)
    assert uri == "postgresql://keelson_admin:p%40ss%3A%2Fword%25@127.0.0.1:5433/postgres"
    parsed = urllib.parse.urlsplit(uri)
    assert urllib.parse.unquote(parsed.password or "") == "p@ss:/word%"
    assert (parsed.hostname, parsed.port, parsed.username) == ("127.0.0.1", 5433, "keelson_admin")
    assert parsed.path == "/postgres"


def test_conninfo_carries_no_password() -> None:
    assert pgconfig.admin_conninfo(5433) == (
        "host=127.0.0.1 port=5433 user=keelson_admin dbname=postgres sslmode=disable"
    )


def test_admin_secret_holds_the_uri_and_its_parts() -> None:
    secret = yaml.safe_load(pgconfig.admin_secret_manifest("s3cret", 5433))
    assert (secret["kind"], secret["metadata"]["name"], secret["metadata"]["namespace"]) == (
        "Secret",
        "pg-admin",
        "default",
    )
    data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert data == {
        "uri": "postgresql://keelson_admin:s3cret@127.0.0.1:5433/postgres",
        "host": "127.0.0.1",
        "port": "5433",
        "user": "keelson_admin",
        "password": "s3cret",
    }
    assert "stringData" not in secret


def test_socket_path() -> None:
    assert pgconfig.socket_path(Path("/s/run"), 5433) == Path("/s/run/.s.PGSQL.5433")
