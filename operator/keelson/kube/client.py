"""A small async Kubernetes API client for the operator's writes.

kopf does the watching; this client does server-side apply, pruning, status and events, with
httpx and the credentials the `kubernetes` package resolves (kubeconfig or in-cluster, with
in-cluster token refresh). Every write goes through here, so it is also where writes are counted.

Under load the API server sheds requests (API Priority and Fairness: 429 with `Retry-After`; a
5xx with `Retry-After` while it starts or is overloaded). Those are retried here, as client-go
does, after at least `Retry-After` plus jitter, so that the operator's many in-flight requests do
not come back in one burst; every other error goes to the caller, whose work queue backs off.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from keelson.kube.resources import Kind, kind_of

FIELD_MANAGER = "keelson-operator"
# Attempts per request when the server asks to come back later (client-go allows 10; a pass
# has a deadline, and the work queue retries the platform after that anyway).
ATTEMPTS = 5
# Backoff without Retry-After: full jitter over BASE * 2**n, capped.
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
# A Retry-After beyond this is not waited out in-line: the request fails and the queue backs off.
RETRY_AFTER_CAP_SECONDS = 30.0
RETRY_AFTER_JITTER = 0.2  # up to 20 % on top of Retry-After


class ApiError(Exception):
    """An API request failed; `status` is the HTTP status, `reason` the API's own reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def _load_configuration() -> Any:
    configuration = k8s_client.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(client_configuration=configuration)
    return configuration


def retry_delay(attempt: int, retry_after: str | None, *, jitter: float) -> float:
    """The wait before retry number `attempt + 1`. `jitter` is a draw from [0, 1)."""
    if retry_after is not None:
        try:
            seconds = float(retry_after)  # the API server sends delta-seconds, never an HTTP date
        except ValueError:
            seconds = -1.0
        if seconds >= 0:
            return min(seconds, RETRY_AFTER_CAP_SECONDS) * (1 + RETRY_AFTER_JITTER * jitter)
    return float(min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt) * jitter)


def _retryable(response: httpx.Response) -> bool:
    if response.status_code == 429:
        return True
    return response.status_code >= 500 and "Retry-After" in response.headers


class _ConfigAuth(httpx.Auth):
    """Bearer token from the loaded configuration, refreshed the way the kubernetes client does
    (in-cluster tokens are rotated by the kubelet)."""

    def __init__(self, configuration: Any) -> None:
        self._configuration = configuration

    def auth_flow(self, request: httpx.Request) -> Any:
        cfg = self._configuration
        if cfg.refresh_api_key_hook is not None:
            cfg.refresh_api_key_hook(cfg)
        token = cfg.get_api_key_with_prefix("authorization") or cfg.get_api_key_with_prefix("BearerToken")
        if token:
            request.headers["Authorization"] = token
        yield request


class KubeClient:
    def __init__(
        self,
        configuration: Any | None = None,
        *,
        timeout: float = 30.0,
        attempts: int = ATTEMPTS,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        user_agent: str | None = None,
    ) -> None:
        cfg = configuration or _load_configuration()
        self._attempts = attempts
        self._sleep = sleep
        self._jitter = jitter
        context = (
            ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.verify_ssl else ssl._create_unverified_context()
        )
        if cfg.cert_file and cfg.key_file:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
        self._http = httpx.AsyncClient(
            base_url=cfg.host,
            verify=context,
            auth=_ConfigAuth(cfg),
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
            transport=transport,
            # The audit log names the user agent: with two replicas it tells their writes apart.
            headers={"User-Agent": user_agent} if user_agent else None,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        for attempt in range(self._attempts):
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise ApiError(0, "ConnectionError", str(exc) or type(exc).__name__) from exc
            if not _retryable(response) or attempt == self._attempts - 1:
                break
            # Every write Keelson sends is safe to repeat (apply, delete with a uid precondition,
            # merge patches with a resourceVersion, Events), and a rejected one was not processed.
            await self._sleep(retry_delay(attempt, response.headers.get("Retry-After"), jitter=self._jitter()))
        if response.status_code >= 400:
            try:
                body = response.json()
                reason, message = body.get("reason", ""), body.get("message", response.text)
            except ValueError:
                reason, message = "", response.text
            raise ApiError(response.status_code, reason or response.reason_phrase, message)
        return dict(response.json()) if response.content else {}

    async def apply(self, obj: dict[str, Any], *, field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """Server-side apply with force: Keelson owns the fields it renders, and only those."""
        kind = kind_of(obj)
        meta = obj["metadata"]
        return await self._request(
            "PATCH",
            kind.path(meta["namespace"], meta["name"]),
            params={"fieldManager": field_manager, "force": "true"},
            content=json.dumps(obj),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )

    async def delete(self, kind: Kind, namespace: str, name: str, *, uid: str | None = None) -> None:
        """Delete, only if it is still the object we decided to delete (uid precondition)."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self._request(
                "DELETE",
                kind.path(namespace, name),
                content=json.dumps(body),
                headers={"Content-Type": "application/json"},
            )
        except ApiError as exc:
            if exc.status not in (404, 409):  # gone already, or replaced by a new object
                raise

    async def replace_status(
        self, kind: Kind, namespace: str, name: str, status: dict[str, Any], *, resource_version: str
    ) -> str:
        """Write the whole status (PUT of the status subresource); returns the new resourceVersion.

        A merge patch would keep every field the new status no longer has (topics of a platform
        without events, sizing without dailyUsers). A replace drops them, and its resourceVersion
        precondition (409 Conflict when it is stale) keeps it from overwriting a newer status."""
        body = {
            "apiVersion": kind.api_version,
            "kind": kind.kind,
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version},
            "status": status,
        }
        written = await self._request(
            "PUT",
            kind.path(namespace, name) + "/status",
            content=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        return str(written.get("metadata", {}).get("resourceVersion", ""))

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._request("GET", kind.path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def get_path(self, path: str) -> dict[str, Any]:
        """A GET of a non-resource URL (discovery documents)."""
        return await self._request("GET", path)

    async def get_crd(self, name: str) -> dict[str, Any] | None:
        """A CustomResourceDefinition: cluster-scoped, so outside `Kind.path`."""
        try:
            return await self._request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def patch_merge(self, kind: Kind, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._request(
            "PATCH",
            kind.path(namespace, name),
            content=json.dumps(body),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    async def create(self, kind: Kind, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        return await self._request(
            "POST", kind.path(namespace), content=json.dumps(obj), headers={"Content-Type": "application/json"}
        )

    async def replace(self, kind: Kind, namespace: str, name: str, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT: with `metadata.resourceVersion` set, a compare-and-swap (409 Conflict when stale)."""
        return await self._request(
            "PUT", kind.path(namespace, name), content=json.dumps(obj), headers={"Content-Type": "application/json"}
        )

    async def watch_one(self, kind: Kind, namespace: str, name: str, *, resource_version: str, seconds: float) -> bool:
        """Wait until the object changes after `resource_version` (True), or `seconds` pass
        (False): one watch request, closed at the first event. Reads only."""
        params = {
            "watch": "true",
            "fieldSelector": f"metadata.name={name}",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(max(1, int(seconds))),
        }
        try:
            async with self._http.stream(
                "GET", kind.path(namespace), params=params, timeout=httpx.Timeout(seconds + 10, connect=10.0)
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise ApiError(response.status_code, response.reason_phrase, response.text)
                async for line in response.aiter_lines():
                    if line.strip():
                        return True
        except httpx.HTTPError as exc:
            raise ApiError(0, "ConnectionError", str(exc) or type(exc).__name__) from exc
        return False
