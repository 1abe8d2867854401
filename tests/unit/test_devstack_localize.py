from keelson.devstack.localize import localize
from tests.cases.invalid_platforms import example


def test_kafka_and_postgres_point_at_the_local_stack() -> None:
    doc = localize(example(), kafka_bootstrap="127.0.0.1:9999", postgres=True)
    kafka = doc["spec"]["kafka"]
    assert (kafka["provider"], kafka["bootstrapServers"], kafka["replicationFactor"]) == ("admin", "127.0.0.1:9999", 1)
    assert kafka["partitions"] == 6  # everything else is kept
    assert doc["spec"]["databases"] == {
        "provider": "postgres",
        "adminSecretRef": {"name": "pg-admin"},
        "deletionPolicy": "Retain",
    }


def test_without_kafka_topics_are_only_listed() -> None:
    doc = localize(example(), kafka_bootstrap=None, postgres=False)
    assert doc["spec"]["kafka"]["provider"] == "none"
    assert doc["spec"]["databases"]["adminSecretRef"] == {"name": "pg-admin"}


def test_other_documents_pass_through_and_input_is_not_mutated() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    assert localize(cm, kafka_bootstrap="a:1", postgres=True) is cm
    original = example()
    localize(original, kafka_bootstrap="a:1", postgres=True)
    assert original == example()
