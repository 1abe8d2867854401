"""``keelson dev run``: an applied platform's reference services as local processes.

There is no container runtime on the local stack (kwok only pretends to run pods), so this reads
the platform's Deployments from the stack's API, resolves each container's env the way the
kubelet would (``envFrom`` ConfigMaps, ``configMapKeyRef``/``secretKeyRef`` values, literal
values, ``$(VAR)`` references), and overrides only what a local process needs:

- ``KEELSON_PORT``: a free loopback port per service, kept in stack.json so it survives restarts;
- ``KEELSON_BIND_HOST=127.0.0.1``;
- the in-cluster URLs in ``KEELSON_SERVICE_URLS`` and ``KEELSON_ROUTES``
  (``http://<svc>.<ns>.svc:<port>``) rewritten to the services' loopback ports;
- ``KEELSON_SMTP_HOST``/``KEELSON_SMTP_PORT``: a local SMTP sink writing mail to ``<state>/mail/``;
- ``KEELSON_SMS_*``: a local SMS provider (Twilio's API, ``smssink.py``) writing each message,
  verification codes included, to ``<state>/sms/``;
- a projected ``serviceAccountToken`` volume (the tokens a service proves itself with to the
  services it calls) becomes a private directory of tokens minted with the TokenRequest API for
  the Deployment's ServiceAccount and each source's audience, as the kubelet mints them, and
  ``KEELSON_CALL_TOKENS_DIR`` points there.

Each service runs as ``python -m keelson_services.run NAME``, detached (see processes.py), with
its log at ``<state>/logs/<process>.log``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from keelson.devstack import ports, processes, smssink, stackfile
from keelson.devstack.ports import LOOPBACK
from keelson.devstack.probes import Health, http_health, tcp_health, wait_until

Progress = Callable[[str], None]

# The reference services `python -m keelson_services.run` knows (its SERVICES).
REFERENCE_SERVICES = ("gateway", "users", "orders", "payments", "notifications")
MAIL_SINK = "mail-sink"
SMS_SINK = "sms-sink"
# stack.json: {"run": {"ports": {process: port}, "gateways": {"ns/platform": url}, "gateway_url": url}}
RUN_KEY = "run"
GATEWAY_URL_KEY = "gateway_url"
READY_TIMEOUT = 120.0
PLATFORM_LABEL = "keelson.dev/platform"
# Variables of the calling shell that must not reach a service: they would point it elsewhere.
_DROPPED_PREFIXES = ("KEELSON_", "KUBERNETES_")
_DROPPED = ("KUBECONFIG",)


class RunError(RuntimeError):
    pass


@dataclass(frozen=True)
class ProjectedToken:
    path: str  # the file's name in the volume
    audience: str
    seconds: int


@dataclass(frozen=True)
class LocalService:
    name: str  # the Deployment's (and Kubernetes Service's) name
    reference: str  # the reference service it runs (container args[0])
    env: dict[str, str]  # as the kubelet would give the container
    service_account: str = "default"
    # Projected service-account tokens by the container's mount path.
    tokens: Mapping[str, tuple[ProjectedToken, ...]] = field(default_factory=dict)


def projected_tokens(pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, tuple[ProjectedToken, ...]]:
    """The ``serviceAccountToken`` sources of the projected volumes ``container`` mounts, by mount path."""
    volumes = {v["name"]: v for v in pod.get("volumes") or [] if "projected" in v}
    found: dict[str, tuple[ProjectedToken, ...]] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            continue
        tokens = tuple(
            ProjectedToken(
                path=source["serviceAccountToken"]["path"],
                audience=source["serviceAccountToken"].get("audience", ""),
                seconds=int(source["serviceAccountToken"].get("expirationSeconds", 3600)),
            )
            for source in volume["projected"].get("sources") or []
            if "serviceAccountToken" in source
        )
        if tokens:
            found[mount["mountPath"]] = tokens
    return found


# --- the pure parts ----------------------------------------------------------------------------

_REFERENCE = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


def expand(value: str, defined: Mapping[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion: defined variables are substituted, undefined ones stay
    as written, and ``$$`` escapes a ``$``."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return defined.get(name, match.group(0))

    return _REFERENCE.sub(sub, value)


def resolve_env(
    container: Mapping[str, Any],
    config_maps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
) -> dict[str, str]:
    """A container's environment as the kubelet builds it: ``envFrom`` sources in order (later
    ones win), then ``env`` entries in order (they win over ``envFrom``). ``secrets`` hold
    decoded values. A missing source or key that is not ``optional`` raises RunError."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, store in (("configMapRef", config_maps), ("secretRef", secrets)):
            ref = source.get(kind)
            if ref is None:
                continue
            data = store.get(ref["name"])
            if data is None:
                if not ref.get("optional"):
                    raise RunError(f"{kind} {ref['name']!r} not found")
                continue
            env.update({f"{prefix}{key}": value for key, value in data.items()})
    for entry in container.get("env") or []:
        name = entry["name"]
        if "valueFrom" not in entry:
            env[name] = expand(str(entry.get("value", "")), env)
            continue
        value_from = entry["valueFrom"]
        for kind, store in (("configMapKeyRef", config_maps), ("secretKeyRef", secrets)):
            ref = value_from.get(kind)
            if ref is None:
                continue
            data = store.get(ref["name"])
            if data is None or ref["key"] not in data:
                if not ref.get("optional"):
                    raise RunError(f"{name}: {kind} {ref['name']}/{ref['key']} not found")
                break
            env[name] = data[ref["key"]]
            break
        else:
            raise RunError(f"{name}: unsupported valueFrom {sorted(value_from)} (no pod to read it from)")
    return env


def local_url(url: str, namespace: str, ports: Mapping[str, int]) -> str:
    """``http://<svc>.<ns>.svc[.cluster.local]:<port>/path`` -> ``http://127.0.0.1:<local port>/path``
    for a service that runs locally; any other URL unchanged."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    for suffix in (f".{namespace}.svc.cluster.local", f".{namespace}.svc", f".{namespace}", ""):
        service = host.removesuffix(suffix) if suffix else host
        if (not suffix or host.endswith(suffix)) and service in ports:
            return urlunsplit((parts.scheme, f"{LOOPBACK}:{ports[service]}", parts.path, parts.query, parts.fragment))
    return url


def local_env(
    env: Mapping[str, str],
    *,
    service: str,
    namespace: str,
    ports: Mapping[str, int],
    smtp_port: int | None,
    sms_port: int | None = None,
) -> dict[str, str]:
    """The resolved env with only what a local process needs overridden (see the module doc)."""
    out = dict(env)
    out["KEELSON_PORT"] = str(ports[service])
    out["KEELSON_BIND_HOST"] = LOOPBACK
    if "KEELSON_SERVICE_URLS" in out:
        urls = json.loads(out["KEELSON_SERVICE_URLS"])
        out["KEELSON_SERVICE_URLS"] = json.dumps(
            {name: local_url(str(url), namespace, ports) for name, url in urls.items()}, sort_keys=True
        )
    if "KEELSON_ROUTES" in out:
        routes = json.loads(out["KEELSON_ROUTES"])
        for route in routes:
            if "url" in route:
                route["url"] = local_url(str(route["url"]), namespace, ports)
        out["KEELSON_ROUTES"] = json.dumps(routes)
    if smtp_port is not None:
        out["KEELSON_SMTP_HOST"] = LOOPBACK
        out["KEELSON_SMTP_PORT"] = str(smtp_port)
    if sms_port is not None:
        out |= {
            "KEELSON_SMS_BASE_URL": f"http://{LOOPBACK}:{sms_port}",
            "KEELSON_SMS_ACCOUNT": smssink.DEV_ACCOUNT,
            "KEELSON_SMS_TOKEN": smssink.DEV_TOKEN,
            "KEELSON_SMS_FROM": smssink.DEV_SENDER,
        }
    if "OTEL_EXPORTER_OTLP_ENDPOINT" in out:
        # The platform's collector is an in-cluster address a local process cannot reach: send
        # spans to a local collector when `dev run`'s own environment names one, else keep them.
        local = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if local:
            out["OTEL_EXPORTER_OTLP_ENDPOINT"] = local
        else:
            out["OTEL_TRACES_EXPORTER"] = "none"
    return out


def reference_services(
    deployments: list[Mapping[str, Any]],
    config_maps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
) -> list[LocalService]:
    """The Deployments that run a reference service (container args[0] names it), with their env."""
    found = []
    for deployment in deployments:
        containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
        pod = deployment.get("spec", {}).get("template", {}).get("spec", {})
        for container in containers:
            args = container.get("args") or []
            if args and args[0] in REFERENCE_SERVICES:
                env = resolve_env(container, config_maps, secrets)
                account = pod.get("serviceAccountName") or "default"
                tokens = projected_tokens(pod, container)
                found.append(LocalService(deployment["metadata"]["name"], args[0], env, account, tokens))
                break
    return sorted(found, key=lambda s: s.name)


def process_name(namespace: str, platform: str, service: str) -> str:
    return f"svc-{namespace}-{platform}-{service}"


def decode_secret(secret: Mapping[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


# --- the side effects --------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    return ports.free_port()


def _run_state(state_dir: Path) -> dict[str, Any]:
    run = stackfile.load(state_dir).get(RUN_KEY)
    return dict(run) if isinstance(run, dict) else {}


def _save_run_state(state_dir: Path, run: dict[str, Any]) -> None:
    stackfile.update(state_dir, **{RUN_KEY: run})


def gateway_url(state_dir: Path) -> str | None:
    url = _run_state(state_dir).get(GATEWAY_URL_KEY)
    return str(url) if url else None


def service_urls(state_dir: Path, platform: str, namespace: str) -> dict[str, str]:
    """The loopback URL of each service `keelson dev run` chose a port for, by service name."""
    prefix = process_name(namespace, platform, "")
    ports = _run_state(state_dir).get("ports", {})
    return {k.removeprefix(prefix): f"http://{LOOPBACK}:{p}" for k, p in ports.items() if k.startswith(prefix)}


def _choose_port(key: str, chosen: dict[str, int], running: bool) -> int:
    """The port kept for ``key``, unless something else now listens on it."""
    port = chosen.get(key)
    if port is None or not (running or _port_free(port)):
        port = _free_port()
        chosen[key] = port
    return port


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES) and k not in _DROPPED}
    no_proxy = ",".join(filter(None, [env.get("NO_PROXY", ""), "127.0.0.1,localhost"]))
    return {**env, "NO_PROXY": no_proxy, "no_proxy": no_proxy, "PYTHONUNBUFFERED": "1"}


def _ensure_sink(state_dir: Path, run: dict[str, Any], progress: Progress, *, name: str, module: str, kind: str) -> int:
    """Start the local sink `name` (``python -m <module> PORT DIR``, DIR ``<state>/<kind>``) unless
    it runs; returns its port."""
    running = processes.alive(state_dir, name)
    port = _choose_port(name, run.setdefault("ports", {}), running)
    directory = state_dir / kind
    if not running:
        processes.start(state_dir, name, [sys.executable, "-m", module, str(port), str(directory)], env=_base_env())
    wait_until(
        lambda: tcp_health(LOOPBACK, port),
        what=name,
        timeout=30.0,
        still_running=lambda: processes.alive(state_dir, name),
        diagnostics=lambda: processes.log_tail(state_dir, name),
    )
    progress(f"{name}: on {LOOPBACK}:{port}, {kind} in {directory}")
    return port


# A local process has no kubelet to renew its tokens: mint them for as long as a demo may run.
LOCAL_TOKEN_SECONDS = 7 * 24 * 3600


def _mint_tokens(state_dir: Path, kubectl: Any, namespace: str, process: str, svc: LocalService) -> dict[str, str]:
    """Mint the service's projected tokens into private directories; returns mount path -> directory."""
    dirs = {}
    for index, (mount_path, tokens) in enumerate(sorted(svc.tokens.items())):
        directory = state_dir / "tokens" / process / str(index)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for token in tokens:
            minted = kubectl.run(
                [
                    "create",
                    "token",
                    svc.service_account,
                    "-n",
                    namespace,
                    f"--audience={token.audience}",
                    f"--duration={max(token.seconds, LOCAL_TOKEN_SECONDS)}s",
                ]
            ).strip()
            target = directory / token.path
            target.touch(mode=0o600, exist_ok=True)
            target.write_text(minted)
        dirs[mount_path] = str(directory)
    return dirs


def _ready(port: int) -> Callable[[], Health]:
    return lambda: http_health(f"http://{LOOPBACK}:{port}/readyz")


def run_platform(
    state_dir: Path,
    kubectl: Any,
    platform: str,
    namespace: str,
    *,
    progress: Progress,
    ready_timeout: float = READY_TIMEOUT,
) -> str:
    """Start the platform's reference services (those already running are left alone); wait for
    each to be ready. Returns the gateway's URL (also kept in stack.json for `keelson dev env`)."""
    msp = kubectl.get_json(["-n", namespace, "microserviceplatforms", platform])
    deployments = kubectl.get_json(["-n", namespace, "deployments", "-l", f"{PLATFORM_LABEL}={platform}"])["items"]
    config_maps = {
        cm["metadata"]["name"]: cm.get("data") or {}
        for cm in kubectl.get_json(["-n", namespace, "configmaps"])["items"]
    }
    secrets = {s["metadata"]["name"]: decode_secret(s) for s in kubectl.get_json(["-n", namespace, "secrets"])["items"]}
    services = reference_services(deployments, config_maps, secrets)
    if not services:
        raise RunError(f"platform {namespace}/{platform} has no Deployments of reference services (is it Ready?)")

    run = _run_state(state_dir)
    smtp_port = _ensure_sink(state_dir, run, progress, name=MAIL_SINK, module="keelson.devstack.mailsink", kind="mail")
    sms_port = _ensure_sink(state_dir, run, progress, name=SMS_SINK, module="keelson.devstack.smssink", kind="sms")
    chosen: dict[str, int] = run.setdefault("ports", {})
    ports = {}
    for svc in services:
        name = process_name(namespace, platform, svc.name)
        ports[svc.name] = _choose_port(name, chosen, processes.alive(state_dir, name))
    _save_run_state(state_dir, run)

    launched = []
    for svc in services:
        name = process_name(namespace, platform, svc.name)
        if processes.alive(state_dir, name):
            progress(f"{svc.name}: already running on {LOOPBACK}:{ports[svc.name]}")
            continue
        env = local_env(
            svc.env, service=svc.name, namespace=namespace, ports=ports, smtp_port=smtp_port, sms_port=sms_port
        )
        mounts = _mint_tokens(state_dir, kubectl, namespace, name, svc)
        if env.get("KEELSON_CALL_TOKENS_DIR") in mounts:
            env["KEELSON_CALL_TOKENS_DIR"] = mounts[env["KEELSON_CALL_TOKENS_DIR"]]
        processes.start(
            state_dir, name, [sys.executable, "-m", "keelson_services.run", svc.reference], env={**_base_env(), **env}
        )
        launched.append(svc.name)
    for svc in services:
        name = process_name(namespace, platform, svc.name)
        wait_until(
            _ready(ports[svc.name]),
            what=svc.name,
            timeout=ready_timeout,
            still_running=lambda n=name: processes.alive(state_dir, n),  # type: ignore[misc]
            diagnostics=lambda n=name: (  # type: ignore[misc]
                f"last lines of {processes.log_path(state_dir, n)}:\n{processes.log_tail(state_dir, n)}"
            ),
        )
        if svc.name in launched:
            progress(
                f"{svc.name}: ready on http://{LOOPBACK}:{ports[svc.name]} (log {processes.log_path(state_dir, name)})"
            )

    gateway = ((msp.get("spec") or {}).get("gateway") or {}).get("service")
    if gateway not in ports:
        gateway = next((s.name for s in services if s.reference == "gateway"), None)
    url = f"http://{LOOPBACK}:{ports[gateway]}" if gateway else ""
    run = _run_state(state_dir)
    run.setdefault("gateways", {})[f"{namespace}/{platform}"] = url
    run[GATEWAY_URL_KEY] = url  # the last platform run is the one `keelson dev env` exports
    _save_run_state(state_dir, run)
    return url


def stop_platform(state_dir: Path, platform: str, namespace: str, *, progress: Progress) -> int:
    """Stop the platform's local services (and the sinks once none remain). How many ran."""
    prefix = process_name(namespace, platform, "")
    stopped = 0
    for name in processes.running_names(state_dir):
        if name.startswith(prefix) and processes.stop(state_dir, name):
            progress(f"{name}: stopped")
            stopped += 1
    if not any(name.startswith("svc-") for name in processes.running_names(state_dir)):
        for sink in (MAIL_SINK, SMS_SINK):
            if processes.stop(state_dir, sink):
                progress(f"{sink}: stopped")
    run = _run_state(state_dir)
    gateways: dict[str, str] = run.setdefault("gateways", {})
    gone = gateways.pop(f"{namespace}/{platform}", None)
    if gone is not None and run.get(GATEWAY_URL_KEY) == gone:
        # Export another platform's gateway that still runs, if any.
        remaining = [u for u in gateways.values() if u]
        run[GATEWAY_URL_KEY] = remaining[-1] if remaining else None
    _save_run_state(state_dir, run)
    return stopped
