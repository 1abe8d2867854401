"""The broker's server.properties, log4j2 configuration and command lines, without a JVM."""

import re
from pathlib import Path

from keelson.devstack import kafkabroker

PORTS = {"kafka": 19092, "kafka-controller": 19093}


def _parse(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_single_node_kraft_in_combined_mode_on_loopback(tmp_path: Path) -> None:
    props = _parse(kafkabroker.server_properties(tmp_path / "data", PORTS))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert props["log.dirs"] == str(tmp_path / "data")
    # No listener anywhere but loopback.
    for key in ("listeners", "advertised.listeners", "controller.quorum.voters"):
        assert set(re.findall(r"(?:://|@)([^:]+):", props[key])) == {"127.0.0.1"}


def test_topics_belong_to_the_operator_and_internal_topics_fit_one_broker(tmp_path: Path) -> None:
    props = _parse(kafkabroker.server_properties(tmp_path, PORTS))
    assert props["auto.create.topics.enable"] == "false"
    assert props["num.partitions"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
        "default.replication.factor",
        "min.insync.replicas",
    ):
        assert props[key] == "1", key


def test_properties_escape_backslashes_and_leading_blanks() -> None:
    text = kafkabroker.render_properties({"a": "C:\\dir", "b": " x"}, "two\nlines")
    assert text == "# two\n# lines\na=C:\\\\dir\nb=\\ x\n"


def test_broker_logs_quietly_to_stdout_and_tools_to_stderr() -> None:
    assert "appender.console.target = SYSTEM_OUT" in kafkabroker.BROKER_LOG4J
    assert "rootLogger.level = WARN" in kafkabroker.BROKER_LOG4J
    assert "logger.server.name = kafka.server.KafkaRaftServer" in kafkabroker.BROKER_LOG4J
    assert "appender.console.target = SYSTEM_ERR" in kafkabroker.TOOLS_LOG4J
    assert "rootLogger.level = ERROR" in kafkabroker.TOOLS_LOG4J
    # Nothing that writes files of its own: the component log is all there is.
    assert "RollingFile" not in kafkabroker.BROKER_LOG4J


def test_server_argv_heap_log4j_and_classpath() -> None:
    argv = kafkabroker.server_argv(Path("/jdk/bin/java"), Path("/cache/libs"), Path("/s/l.properties"), Path("/s/p"))
    assert argv[0] == "/jdk/bin/java"
    assert {"-Xmx512m", "-Xms256m", "-XX:+ExitOnOutOfMemoryError"} <= set(argv)
    assert "-Dlog4j2.configurationFile=/s/l.properties" in argv
    assert argv[argv.index("-cp") + 1] == "/cache/libs/*"
    assert argv[-2:] == ["kafka.Kafka", "/s/p"]


def test_format_argv_keeps_a_dash_in_the_cluster_id_an_argument() -> None:
    argv = kafkabroker.format_argv(Path("java"), Path("/l"), Path("/t.properties"), Path("/s/p"), "-abc")
    assert argv[argv.index("kafka.tools.StorageTool") + 1 :] == ["format", "--cluster-id=-abc", "--config=/s/p"]


def test_tool_argv_appends_the_tool_arguments() -> None:
    topics = "org.apache.kafka.tools.TopicCommand"
    argv = kafkabroker.tool_argv(Path("java"), Path("/l"), Path("/t"), topics, ["--list"])
    assert argv[-2:] == ["org.apache.kafka.tools.TopicCommand", "--list"]
    assert "-Xmx256m" in argv


def test_cluster_ids_are_kafka_uuids() -> None:
    ids = {kafkabroker.new_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id) for cluster_id in ids)


def test_formatted_means_meta_properties(tmp_path: Path) -> None:
    assert not kafkabroker.formatted(tmp_path)
    (tmp_path / "meta.properties").write_text("cluster.id=x\n")
    assert kafkabroker.formatted(tmp_path)
