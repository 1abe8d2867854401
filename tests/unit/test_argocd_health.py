"""The Argo CD health check shipped in examples/argocd, run by a real Lua 5.1 (the dialect of Argo
CD's gopher-lua) on platforms as the operator reports them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from lupa import lua51

from keelson.controller.conditions import ConditionState, merge_conditions
from keelson.controller.status import ready_condition

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "argocd"
SCRIPT = (EXAMPLES / "health.lua").read_text()


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """What Argo CD would show: the script run with `obj` as its global, as Argo CD runs it."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)

    def to_lua(value: Any) -> Any:
        if isinstance(value, dict):
            return lua.table_from({k: to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([to_lua(v) for v in value])
        return value

    lua.globals().obj = to_lua(obj)
    result = lua.execute(SCRIPT)
    return str(result["status"]), str(result["message"])


def platform(
    *areas: ConditionState, generation: int = 3, observed: int | None = 3, paused: bool = False
) -> dict[str, Any]:
    """A platform whose status the operator's own functions wrote."""
    conditions = [ready_condition(list(areas)), *areas]
    if paused:
        conditions.append(ConditionState("Paused", "True", "Paused", "keelson.dev/reconcile=paused"))
    status: dict[str, Any] = {"conditions": merge_conditions(None, conditions, generation=observed or 1, now="t")}
    if observed is not None:
        status["observedGeneration"] = observed
    return {"metadata": {"name": "shop", "generation": generation}, "status": status}


READY = ConditionState("WorkloadsReady", "True", "AllServicesReady", "5 services ready")


def test_a_ready_platform_is_healthy() -> None:
    assert health(platform(READY)) == ("Healthy", "the platform is reconciled and every service is ready")


def test_a_platform_on_its_way_is_progressing() -> None:
    assert health({"metadata": {"generation": 1}})[0] == "Progressing"
    assert health(platform(READY, generation=4, observed=3)) == (
        "Progressing",
        "Waiting for the operator to observe generation 4",
    )
    starting = ConditionState("WorkloadsReady", "False", "Progressing", "waiting for orders (1/3 ready)")
    assert health(platform(starting)) == ("Progressing", "WorkloadsReady: waiting for orders (1/3 ready)")
    for reason in ("Reconciling", "RoutePending", "KafkaTopicsPending", "DatabasesPending"):
        assert health(platform(ConditionState("TopicsReady", "False", reason, "soon")))[0] == "Progressing", reason


def test_a_platform_that_needs_a_person_is_degraded_and_says_why() -> None:
    refused = ConditionState("WorkloadsReady", "False", "ApplyFailed", "1 object(s) could not be applied; x: y")
    assert health(platform(refused)) == (
        "Degraded",
        "ApplyFailed: WorkloadsReady: 1 object(s) could not be applied; x: y",
    )
    for reason in ("InvalidSpec", "BrokerUnreachable", "AdminRequestFailed", "RouteKindUnavailable", "Something"):
        assert health(platform(ConditionState("TopicsReady", "False", reason, "no")))[0] == "Degraded", reason


def test_a_paused_platform_is_suspended() -> None:
    assert health(platform(READY, paused=True)) == ("Suspended", "keelson.dev/reconcile=paused")
    # A spec changed while paused is not observed (no write) until the pause is lifted.
    assert health(platform(READY, paused=True, generation=4, observed=3))[0] == "Suspended"


def test_the_configmap_carries_the_script_verbatim() -> None:
    config = yaml.safe_load((EXAMPLES / "argocd-cm.yaml").read_text())
    assert config["data"]["resource.customizations.health.keelson.dev_MicroservicePlatform"] == SCRIPT
