from keelson.devstack.localize import localize
from tests.cases.invalid_platforms import example

SECURE = {
    "bootstrapServers": "127.0.0.1:9999",
    "tls": {"caSecretRef": {"name": "kafka-ca"}},
    "authentication": {"type": "scram-sha-512", "adminSecretRef": {"name": "kafka-admin"}},
}


def test_kafka_and_postgres_point_at_the_local_stack() -> None:
    doc = localize(example(), kafka={"bootstrapServers": "127.0.0.1:9999"}, postgres=True)
    kafka = doc["spec"]["kafka"]
    assert (kafka["provider"], kafka["bootstrapServers"], kafka["replicationFactor"]) == ("admin", "127.0.0.1:9999", 1)
    assert kafka["partitions"] == 6  # everything else is kept
    assert "tls" not in kafka and "authentication" not in kafka
    assert doc["spec"]["databases"] == {
        "provider": "postgres",
        "adminSecretRef": {"name": "pg-admin"},
        "deletionPolicy": "Retain",
    }


def test_a_secured_stack_adds_its_ca_and_admin_secrets_in_place_of_the_examples() -> None:
    original = example()
    original["spec"]["kafka"]["tls"] = {"caSecretRef": {"name": "corp-ca", "key": "bundle.pem"}}
    kafka = localize(original, kafka=SECURE, postgres=True)["spec"]["kafka"]
    assert {k: kafka[k] for k in SECURE} == SECURE


def test_without_kafka_topics_are_only_listed() -> None:
    doc = localize(example(), kafka=None, postgres=False)
    assert doc["spec"]["kafka"]["provider"] == "none"
    assert doc["spec"]["databases"]["adminSecretRef"] == {"name": "pg-admin"}


def test_other_documents_pass_through_and_input_is_not_mutated() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    assert localize(cm, kafka=SECURE, postgres=True) is cm
    original = example()
    localize(original, kafka=SECURE, postgres=True)
    assert original == example()
