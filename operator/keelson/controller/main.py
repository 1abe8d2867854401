"""Running the operator: logging, metrics and readiness endpoint, kopf."""

from __future__ import annotations

import asyncio
import logging
import os

import kopf
from kopf._cogs.structs import references

from keelson.controller import endpoints

# The exit status after losing leadership: the pod restarts and becomes a candidate again.
LOST_LEADERSHIP = 1


def run(*, metrics_port: int, health_port: int, namespaces: list[str] | None, leader_election: bool = False) -> int:
    level = os.environ.get("KEELSON_LOG_LEVEL", "info").upper()
    kopf.configure(verbose=level == "DEBUG", log_format=kopf.LogFormat.JSON, log_prefix=False)
    logging.getLogger().setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # kopf logs every handled watch event at info; at hundreds of children that is noise.
    logging.getLogger("kopf.objects").setLevel(max(logging.getLevelName(level), logging.WARNING))
    from keelson.controller import handlers  # registers the handlers

    controller = handlers.CONTROLLER
    controller.leader_election = leader_election
    endpoints.start(metrics_port, os.environ.get("KEELSON_METRICS_ADDRESS", "0.0.0.0"), controller.ready)
    # Our own handle on what kopf watches, for the rescans that work around its CRD race.
    insights = references.Insights()
    controller.insights = insights

    async def operate() -> None:
        # kopf stops (cleanup handlers included) on SIGTERM, or when leadership is lost.
        await kopf.operator(
            insights=insights,
            clusterwide=not namespaces,
            namespaces=namespaces or [],
            standalone=True,
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz",
            stop_flag=controller.lost,
        )

    asyncio.run(operate())
    return LOST_LEADERSHIP if controller.lost.is_set() else 0
