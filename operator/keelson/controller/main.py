"""Running the operator: logging, metrics endpoint, kopf."""

from __future__ import annotations

import asyncio
import logging
import os

import kopf
from kopf._cogs.structs import references
from prometheus_client import start_http_server


def run(*, metrics_port: int, health_port: int, namespaces: list[str] | None) -> int:
    level = os.environ.get("KEELSON_LOG_LEVEL", "info").upper()
    kopf.configure(verbose=level == "DEBUG", log_format=kopf.LogFormat.JSON, log_prefix=False)
    logging.getLogger().setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # kopf logs every handled watch event at info; at hundreds of children that is noise.
    logging.getLogger("kopf.objects").setLevel(max(logging.getLevelName(level), logging.WARNING))
    start_http_server(metrics_port, addr=os.environ.get("KEELSON_METRICS_ADDRESS", "0.0.0.0"))
    from keelson.controller import handlers  # registers the handlers

    # Our own handle on what kopf watches, for the rescans that work around its CRD race.
    insights = references.Insights()
    handlers.CONTROLLER.insights = insights
    asyncio.run(
        kopf.operator(
            insights=insights,
            clusterwide=not namespaces,
            namespaces=namespaces or [],
            standalone=True,
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz",
        )
    )
    return 0
