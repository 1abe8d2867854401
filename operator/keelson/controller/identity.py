"""Who this operator process is: the holder it writes into the Lease, and the user agent of every
request, so that the API server's audit log tells two replicas' writes apart."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import kopf

import keelson

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def new_identity(environ: Mapping[str, str]) -> str:
    """The pod's name plus something unique, as client-go does (hostname + "_" + uuid): a
    restarted container in the same pod is a new candidate, never mistaken for the old leader."""
    pod = environ.get("POD_NAME") or environ.get("HOSTNAME") or socket.gethostname()
    return f"{pod}_{uuid.uuid4().hex[:12]}"


def user_agent(identity: str) -> str:
    return f"keelson-operator/{keelson.__version__} ({identity})"


def lease_namespace(environ: Mapping[str, str], account_file: Path = SERVICE_ACCOUNT_NAMESPACE) -> str | None:
    """The operator's own namespace: the chart's downward-API POD_NAMESPACE, else the service
    account's, else None (outside a cluster, with no POD_NAMESPACE set)."""
    if environ.get("POD_NAMESPACE"):
        return environ["POD_NAMESPACE"]
    try:
        return account_file.read_text().strip() or None
    except OSError:
        return None


def kopf_session(info: kopf.ConnectionInfo, agent: str) -> kopf.AiohttpSession:
    """kopf's own session, built as kopf builds it from the credentials, but with our user agent
    (kopf names itself `kopf/<version>` only when the session has no User-Agent)."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers={**info.as_http_headers(), "User-Agent": agent},
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    context: dict[str, Any] = {
        "server": info.server,
        "default_namespace": info.default_namespace,
        "priority": info.priority,
        "expiration": info.expiration,
    }
    return kopf.AiohttpSession(aiohttp_session=session, **context)
