"""The stack's Kafka broker and PostgreSQL server: they answer, they keep their data across a
stop and start (what tests of the operator's reaction to an outage do), and they listen on
loopback only. Kafka is driven with the broker's own tools, PostgreSQL with psql."""

from __future__ import annotations

import base64
import ipaddress
import os
import subprocess
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.kube import Kube, eventually
from keelson.devstack import kafkaprobe, pgserver
from keelson.devstack.stack import LocalStack

pytestmark = pytest.mark.cluster

TOPICS = "org.apache.kafka.tools.TopicCommand"
PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"


def _kafka_tool(stack: LocalStack, main_class: str, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        stack.kafka_tool_argv(
            main_class, "--bootstrap-server", stack.kafka_bootstrap, *stack.kafka_client_config(), *args
        ),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, f"{main_class} {args} failed: {proc.stderr}"
    return proc.stdout


def _consume(stack: LocalStack, topic: str, count: int) -> list[str]:
    out = _kafka_tool(
        stack, CONSUMER, "--topic", topic, "--from-beginning", "--max-messages", str(count), "--timeout-ms", "30000"
    )
    return out.splitlines()


def _psql(uri: str, sql: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """psql with the URI's parts as arguments and the password in the environment, not argv."""
    parts = urllib.parse.urlsplit(uri)
    env = {**os.environ, "PGPASSWORD": urllib.parse.unquote(parts.password or ""), "PGCONNECT_TIMEOUT": "5"}
    conninfo = f"host={parts.hostname} port={parts.port} user={parts.username} dbname={parts.path.lstrip('/')}"
    proc = subprocess.run(
        ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql, conninfo],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _address(hex_address: str) -> str:
    """An address as /proc/net/tcp{,6} writes it (32-bit words in host order), IPv4-mapped unwrapped."""
    words = bytes.fromhex(hex_address)
    raw = b"".join(words[i : i + 4][::-1] for i in range(0, len(words), 4))
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    v6 = ipaddress.IPv6Address(raw)
    return str(v6.ipv4_mapped or v6)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the IPv4 and IPv6 sockets listening on ``port``, from /proc/net."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                address, hex_port = fields[1].rsplit(":", 1)
                if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    addresses.add(_address(address))
    return addresses


def test_status_and_env_report_the_services(stack: LocalStack) -> None:
    report = stack.status()
    assert report["kafka"] == "healthy"
    assert report["postgres"] == "healthy"
    env = stack.env()
    assert env["KEELSON_KAFKA_BOOTSTRAP"] == stack.kafka_bootstrap == f"127.0.0.1:{stack.ports['kafka']}"
    # TLS on the stack's CA and the super user's SCRAM credentials, as every client here reads them.
    assert env["KEELSON_KAFKA_CA_FILE"] == str(stack.pki.ca.cert)
    assert env["KEELSON_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert (env["KEELSON_KAFKA_USERNAME"], env["KEELSON_KAFKA_PASSWORD"]) == (
        "keelson-admin",
        stack.kafka_admin_password,
    )
    assert env["KEELSON_POSTGRES_ADMIN_URI"] == stack.postgres_admin_uri
    assert stack.postgres_admin_uri.startswith("postgresql://keelson_admin:")
    assert stack.postgres_admin_uri.endswith(f"@127.0.0.1:{stack.ports['postgres']}/postgres")


def test_services_listen_on_loopback_only(stack: LocalStack) -> None:
    # The JVM listens on an IPv6 socket bound to ::ffff:127.0.0.1, which is the same thing.
    for name in ("kafka", "kafka-controller", "postgres"):
        assert _listening_addresses(stack.ports[name]) == {"127.0.0.1"}, name


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A stack of the test's own: a restart of the SCRAM-secured broker after long use loses its
    logins (a known defect of the dev stack, docs/testing.md), which would take the suite's
    broker away from every later test."""
    local = LocalStack(tmp_path / "stack")
    local.up(kafka=True, postgres=False, operator=False, progress=print)
    try:
        yield local
    finally:
        local.down()


def test_kafka_serves_topics_and_keeps_them_across_a_restart(own_stack: LocalStack) -> None:
    stack = own_stack
    topic = f"devstack-{uuid.uuid4().hex[:8]}"
    assert f"Created topic {topic}." in _kafka_tool(
        stack, TOPICS, "--create", "--topic", topic, "--partitions", "3", "--replication-factor", "1"
    )
    _kafka_tool(stack, PRODUCER, "--topic", topic, stdin="before the restart\n")

    assert stack.stop_component("kafka")
    assert stack.status()["kafka"] == "stopped"
    assert not kafkaprobe.broker_health("127.0.0.1", stack.ports["kafka"]).ok
    stack.start_component("kafka")

    assert topic in _kafka_tool(stack, TOPICS, "--list").split()
    assert "PartitionCount: 3" in _kafka_tool(stack, TOPICS, "--describe", "--topic", topic)
    assert _consume(stack, topic, 1) == ["before the restart"]


def test_kafka_creates_no_topic_on_demand(stack: LocalStack) -> None:
    # The operator owns topics: a producer naming a missing topic must not create it.
    topic = f"devstack-missing-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        stack.kafka_tool_argv(
            PRODUCER, "--bootstrap-server", stack.kafka_bootstrap, *stack.kafka_client_config(), "--topic", topic,
            "--producer-property", "max.block.ms=2000",
        ),
        input="x\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert topic not in _kafka_tool(stack, TOPICS, "--list").split()


def test_postgres_admin_uri_logs_in_and_data_survives_a_restart(stack: LocalStack) -> None:
    uri = stack.postgres_admin_uri
    assert _psql(uri, "select 1").stdout.strip() == "1"
    assert _psql(uri, "select rolsuper from pg_roles where rolname = current_user").stdout.strip() == "t"
    table = f"devstack_{uuid.uuid4().hex[:8]}"
    _psql(uri, f"create table {table} (note text); insert into {table} values ('before the restart')")

    assert stack.stop_component("postgres")
    assert stack.status()["postgres"] == "stopped"
    assert _psql(uri, "select 1", check=False).returncode != 0
    stack.start_component("postgres")

    assert _psql(uri, f"select note from {table}").stdout.strip() == "before the restart"


def test_postgres_refuses_a_wrong_password(stack: LocalStack) -> None:
    parts = urllib.parse.urlsplit(stack.postgres_admin_uri)
    wrong = parts._replace(netloc=f"keelson_admin:wrong@{parts.hostname}:{parts.port}").geturl()
    proc = _psql(wrong, "select 1", check=False)
    assert proc.returncode != 0
    assert "password authentication failed" in proc.stderr


def test_postgres_never_runs_as_root(stack: LocalStack) -> None:
    record = stack.paths.postgres / "data" / "postmaster.pid"
    pid = int(record.read_text().splitlines()[0])
    with open(f"/proc/{pid}/status") as fh:
        uids = next(line for line in fh if line.startswith("Uid:")).split()[1:]
    assert "0" not in uids
    assert pgserver.data_owner(stack.paths.postgres) == int(uids[0])


def test_admin_secret_for_the_operator(stack: LocalStack, kube: Kube) -> None:
    secret = eventually(lambda: kube.get("secret", "pg-admin", "default"), timeout=10, what="Secret pg-admin")
    data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert set(data) == {"uri", "host", "port", "user", "password"}
    assert data["uri"] == stack.postgres_admin_uri
    assert (data["host"], data["port"], data["user"]) == ("127.0.0.1", str(stack.ports["postgres"]), "keelson_admin")
    assert _psql(data["uri"], "select current_user").stdout.strip() == "keelson_admin"
