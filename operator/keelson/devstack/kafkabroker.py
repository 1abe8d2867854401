"""Kafka's files and command lines for the stack's single broker: KRaft, combined mode.

One JVM is both the broker and its own one-voter controller quorum, on loopback only. All
but ``prepare`` are pure functions of the stack's paths and ports, so they can be read and
tested without a JVM.

By default (``BrokerSecurity``) clients and the broker itself talk SASL_SSL with SCRAM-SHA-512,
on a certificate from the stack's CA, and the StandardAuthorizer refuses whatever no ACL allows;
the stack's admin user (made at ``format``, so it exists before the first request) is a super
user, and so is the broker's own certificate on the mutual-TLS CONTROLLER listener. Without it,
the old plaintext listener, with no authentication and no authorizer.
"""

import base64
import os
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from keelson.devstack.paths import StackPaths
from keelson.devstack.ports import LOOPBACK

NODE_ID = 1
# Plenty for a development broker, and small next to the control plane on a 2-core machine.
HEAP = ("-Xmx512m", "-Xms256m")
# Kafka's own start scripts' choices; plus exit on OOM so a wedged broker shows as a dead one.
JVM_OPTIONS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
TOOL_HEAP = ("-Xmx256m",)


class JavaNotFoundError(RuntimeError):
    pass


def java_binary() -> Path:
    """``$JAVA_HOME/bin/java``, else ``java`` on PATH. Kafka 4 needs Java 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return Path(home) / "bin" / "java"
    found = shutil.which("java")
    if found is None:
        raise JavaNotFoundError("java is not on PATH (Kafka needs Java 17+; or run `keelson dev up --no-kafka`)")
    return Path(found)


def new_cluster_id() -> str:
    """A Kafka Uuid: 16 random bytes, URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


def _escape(value: str) -> str:
    # Java .properties: a backslash starts an escape; leading blanks would be dropped.
    escaped = value.replace("\\", "\\\\")
    return "\\" + escaped if escaped[:1] in (" ", "\t") else escaped


def render_properties(values: Mapping[str, str], header: str) -> str:
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"{key}={_escape(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


SCRAM = "SCRAM-SHA-512"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"
# What `format` wrote into the log directory: a plaintext-formatted broker has no admin user.
SECURITY_MARKER = "keelson-security"


@dataclass(frozen=True)
class BrokerSecurity:
    """TLS on a certificate of the stack's CA, SCRAM users, an authorizer."""

    admin_user: str
    admin_password: str = field(repr=False)
    keystore: Path  # the broker's key and certificate, PEM
    truststore: Path  # the stack's CA certificate, PEM
    broker_principal: str  # the broker's certificate as a principal, on the CONTROLLER listener

    @property
    def mode(self) -> str:
        return f"sasl_ssl/{SCRAM}"


def new_password() -> str:
    return secrets.token_urlsafe(24)


def client_jaas(user: str, password: str) -> str:
    # Used by the broker as a client of itself (inter-broker); the server side reads SCRAM users
    # from the metadata log, not from here.
    return f'{SCRAM_LOGIN} required username="{user}" password="{password}";'


def _security_settings(broker: int, controller: int, security: BrokerSecurity | None) -> dict[str, str]:
    if security is None:
        return {
            "listeners": f"PLAINTEXT://{LOOPBACK}:{broker},CONTROLLER://{LOOPBACK}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{broker}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        }
    return {
        "listeners": f"SASL_SSL://{LOOPBACK}:{broker},CONTROLLER://{LOOPBACK}:{controller}",
        "advertised.listeners": f"SASL_SSL://{LOOPBACK}:{broker}",
        "inter.broker.listener.name": "SASL_SSL",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:SSL,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": SCRAM,
        "sasl.mechanism.inter.broker.protocol": SCRAM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": client_jaas(
            security.admin_user, security.admin_password
        ),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(security.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(security.truststore),
        # The controller listener takes only certificates of the stack's CA: the broker's own.
        "listener.name.controller.ssl.client.auth": "required",
        "authorizer.class.name": AUTHORIZER,
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{security.admin_user};User:{security.broker_principal}",
    }


def server_settings(data_dir: Path, ports: Mapping[str, int], security: BrokerSecurity | None = None) -> dict[str, str]:
    broker, controller = ports["kafka"], ports["kafka-controller"]
    return {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        # A static one-voter quorum: `format` needs no --standalone/--initial-controllers.
        "controller.quorum.voters": f"{NODE_ID}@{LOOPBACK}:{controller}",
        **_security_settings(broker, controller, security),
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        # The operator, not its clients, owns topics: a typo in a service must not create one.
        "auto.create.topics.enable": "false",
        # One broker: every internal topic at replication factor 1, or it is never created.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Consumer groups form at once instead of waiting 3 s for more members: tests are faster.
        "group.initial.rebalance.delay.ms": "0",
    }


def server_properties(data_dir: Path, ports: Mapping[str, int], security: BrokerSecurity | None = None) -> str:
    return render_properties(
        server_settings(data_dir, ports, security),
        "Written by `keelson dev up` before every start: change keelson/devstack/kafkabroker.py, not this file.",
    )


def log4j2_properties(*, level: str, target: str) -> str:
    """A log4j2 configuration with one console appender (``SYSTEM_OUT`` or ``SYSTEM_ERR``).

    The broker logs warnings, plus its own start and stop lines, to stdout, which is its
    component log; Kafka's default configuration would write half a dozen rolling files.
    """
    return (
        "# Written by `keelson dev up`: change keelson/devstack/kafkabroker.py, not this file.\n"
        "status = warn\n"
        "appender.console.type = Console\n"
        "appender.console.name = CONSOLE\n"
        f"appender.console.target = {target}\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = [%d] %p %m (%c)%n\n"
        f"rootLogger.level = {level}\n"
        "rootLogger.appenderRef.console.ref = CONSOLE\n"
        # "Kafka Server started" / "shut down completed": worth seeing in the component log.
        "logger.server.name = kafka.server.KafkaRaftServer\n"
        "logger.server.level = INFO\n"
    )


BROKER_LOG4J = log4j2_properties(level="WARN", target="SYSTEM_OUT")
# Command-line tools print their results on stdout: their logging goes to stderr, errors only.
TOOLS_LOG4J = log4j2_properties(level="ERROR", target="SYSTEM_ERR")


def _java(java: Path, libs: Path, log4j: Path, heap: tuple[str, ...], main_class: str) -> list[str]:
    return [
        str(java),
        *heap,
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        # Java expands a trailing `/*` on the class path into every jar of the directory.
        f"{libs}/*",
        main_class,
    ]


def format_argv(
    java: Path, libs: Path, log4j: Path, config: Path, cluster_id: str, *, security: BrokerSecurity | None = None
) -> list[str]:
    """Write meta.properties and the bootstrap metadata into the (empty) log directory, with the
    admin's SCRAM credentials when secured (a SASL listener has no other way to let anyone in)."""
    storage_tool = _java(java, libs, log4j, TOOL_HEAP, "kafka.tools.StorageTool")
    # `=` keeps an id that starts with "-" from being read as an option.
    argv = [*storage_tool, "format", f"--cluster-id={cluster_id}", f"--config={config}"]
    if security is not None:
        # On the command line of a run of a few seconds, on a development machine, once.
        argv.append(f"--add-scram={SCRAM}=[name={security.admin_user},password={security.admin_password}]")
    return argv


def server_argv(java: Path, libs: Path, log4j: Path, config: Path) -> list[str]:
    return [*_java(java, libs, log4j, (*HEAP, *JVM_OPTIONS), "kafka.Kafka"), str(config)]


def tool_argv(java: Path, libs: Path, log4j: Path, main_class: str, args: list[str]) -> list[str]:
    """One of Kafka's command-line tools, e.g. ``org.apache.kafka.tools.TopicCommand``."""
    return [*_java(java, libs, log4j, TOOL_HEAP, main_class), *args]


def formatted(data_dir: Path) -> bool:
    return (data_dir / "meta.properties").is_file()


class FormatError(RuntimeError):
    pass


def _mode(security: BrokerSecurity | None) -> str:
    return security.mode if security else "plaintext"


def prepare(
    paths: StackPaths, ports: Mapping[str, int], java: Path, libs: Path, security: BrokerSecurity | None = None
) -> None:
    """Config files (rewritten before every start) and, on the first start only, ``format``."""
    paths.kafka_data.mkdir(parents=True, exist_ok=True)
    marker = paths.kafka / SECURITY_MARKER
    if formatted(paths.kafka_data) and marker.is_file() and marker.read_text().strip() != _mode(security):
        raise FormatError(
            f"the broker's data in {paths.kafka_data} was formatted for {marker.read_text().strip()}, not "
            f"{_mode(security)}: `keelson dev down` first (or keep the mode it was made with)"
        )
    paths.kafka_config.write_text(server_properties(paths.kafka_data, ports, security))
    paths.kafka_config.chmod(0o600)  # the admin's password is in it
    paths.kafka_log4j.write_text(BROKER_LOG4J)
    paths.kafka_tools_log4j.write_text(TOOLS_LOG4J)
    if formatted(paths.kafka_data):
        return
    argv = format_argv(java, libs, paths.kafka_tools_log4j, paths.kafka_config, new_cluster_id(), security=security)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        if security is not None:
            detail = detail.replace(security.admin_password, "<password>")
        raise FormatError(f"kafka storage format failed (exit {result.returncode}): {detail}")
    marker.write_text(_mode(security) + "\n")
