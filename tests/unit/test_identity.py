"""The operator's identity: the pod's name plus a uuid, in the Lease and the user agent."""

from __future__ import annotations

from pathlib import Path

from keelson.controller.identity import lease_namespace, new_identity, user_agent


def test_identity_is_the_pod_name_and_unique_per_process() -> None:
    one, two = (
        new_identity({"POD_NAME": "keelson-operator-7d9-x2"}),
        new_identity({"POD_NAME": "keelson-operator-7d9-x2"}),
    )
    assert one.startswith("keelson-operator-7d9-x2_") and one != two
    assert new_identity({"HOSTNAME": "host-1"}).startswith("host-1_")


def test_user_agent_carries_the_identity() -> None:
    assert user_agent("pod_abc").startswith("keelson-operator/") and user_agent("pod_abc").endswith(" (pod_abc)")


def test_lease_namespace_from_the_downward_api_else_the_service_account(tmp_path: Path) -> None:
    account = tmp_path / "namespace"
    assert lease_namespace({"POD_NAMESPACE": "ops"}, account) == "ops"
    assert lease_namespace({}, account) is None
    account.write_text("keelson-system\n")
    assert lease_namespace({}, account) == "keelson-system"
