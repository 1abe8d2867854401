"""Shared bookkeeping of one databases pass: the objects, status entries, Events and condition it
collects, and the rules every provider follows. Area objects that are not returned are pruned; so
whatever fails, `keep` returns the live Secrets and egress policies as they are."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.controller.areas import AreaResult, PlatformEvent
from keelson.controller.cache import ChildCache, controller_uid
from keelson.controller.conditions import ConditionState
from keelson.controller.drift import HASH_ANNOTATION
from keelson.databases import rotation
from keelson.databases.admin import AdminConnection
from keelson.databases.credentials import (
    Credentials,
    checksum,
    from_secret,
    key_encryption_key,
    new_key_encryption_key,
)
from keelson.databases.naming import identifier, secret_name
from keelson.databases.server import Session
from keelson.kube.resources import Kind
from keelson.render.context import RenderContext
from keelson.render.databases import (
    CHECKSUM_ANNOTATION,
    COMPONENT_LABEL,
    DATABASE_COMPONENT,
    egress_policy_name,
    provider,
    render_database_secret,
)

DATABASES_READY = "DatabasesReady"
RETAINED = "retained:"

Connector = Callable[[AdminConnection], AbstractAsyncContextManager[Session]]


class SecretReader(Protocol):
    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None: ...


@dataclass
class AreaState:
    """What outlives a pass: the clients, and the operator's memory of credentials."""

    client: SecretReader
    cache: ChildCache
    connector: Connector
    # Credentials last written per (namespace, platform, service): a deleted Secret is restored
    # from here with an unchanged password. Lost on restart, when the password is rotated instead.
    memory: dict[tuple[str, str, str], Credentials] = field(default_factory=dict)
    # Likewise the key-encryption key last written, so that a Secret the watch has not brought
    # back yet keeps its key (a new one would leave what the service encrypted unreadable).
    keks: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # (endpoint, role, checksum) known to log in (see databases.provisioning).
    verified: set[tuple[str, str, str]] = field(default_factory=set)
    # The admin connection last read per (namespace, Secret name), in memory only. Deleting a
    # namespace deletes the admin Secret and the platform together, and the Secret usually goes
    # first: the Delete policy's drops at deletion would then wait for ever for a Secret nobody can
    # create again in a terminating namespace, and hold the namespace with them.
    admins: dict[tuple[str, str], AdminConnection] = field(default_factory=dict)


def entry(
    service: str, provider_: str, database: str | None, secret: str, *, ready: bool, message: str | None = None
) -> dict[str, Any]:
    """One status.databases item (`api.status.DatabaseStatus`); never holds a credential."""
    entry: dict[str, Any] = {"service": service, "provider": provider_, "secret": secret, "ready": ready}
    if database:
        entry["database"] = database
    if message:
        entry["message"] = message[:1024]
    return entry


class DatabasePass:
    """One reconcile of one platform's databases: collects objects, entries, events. A subclass
    per provider adds the provider's work (`run`)."""

    def __init__(self, state: AreaState, platform: dict[str, Any], model: MicroservicePlatform) -> None:
        self.state = state
        meta = platform["metadata"]
        self.uid = meta.get("uid", "")
        self.deleting = bool(meta.get("deletionTimestamp"))
        self.ctx = RenderContext(
            name=meta["name"], namespace=meta["namespace"], spec=model.spec, placements=model.placements
        )
        self.model = model
        self.provider = provider(self.ctx)
        self.live_status: dict[str, Any] = platform.get("status") or {}
        self.previous = {e["service"]: e for e in self.live_status.get("databases") or [] if "service" in e}
        self.wanted = [s.name for s in model.spec.services if s.database is not None]
        self.rotation = rotation.parse(meta.get("annotations", {}).get(rotation.ROTATE_ANNOTATION))
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.entries: dict[str, dict[str, Any]] = {}
        self.annotations: dict[str, dict[str, str]] = {}
        self.events: list[PlatformEvent] = []
        self.condition: ConditionState | None = None
        self.retry = False
        self.errors: list[str] = []
        self.endpoint: str | None = None  # host:port of the server, once known

    # -- bookkeeping ---------------------------------------------------------------------------

    def fail(self, reason: str, message: str, *, retry: bool = True) -> None:
        if self.condition is None:
            self.condition = ConditionState(DATABASES_READY, "False", reason, message)
        self.retry |= retry
        self.errors.append(f"databases: {reason}: {message}")

    def add(self, obj: dict[str, Any]) -> None:
        self.objects[(obj["kind"], obj["metadata"]["name"])] = obj

    def live(self, kind: str, name: str, service: str) -> dict[str, Any] | None:
        """The service's object, where it lives (its team's namespace for an attached service),
        if it is ours (controlled by the platform, or by the PlatformService that attached it)."""
        obj = self.state.cache.get(kind, self.ctx.namespace_of(service), name)
        placement = self.ctx.placements.get(service)
        owner = placement.uid if placement is not None else self.uid
        return obj if obj is not None and controller_uid(obj) in (owner, None) else None

    def keep(self, kind: str, name: str, service: str) -> dict[str, Any] | None:
        """Return a live object as it is, so that it is neither pruned nor altered."""
        obj = self.live(kind, name, service)
        if obj is None:
            return None
        meta = obj["metadata"]
        ours = ("app.kubernetes.io/", "keelson.dev/", "cnpg.io/")
        kept_meta: dict[str, Any] = {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": {k: v for k, v in (meta.get("labels") or {}).items() if k.startswith(ours)},
        }
        annotations = {
            k: v
            for k, v in (meta.get("annotations") or {}).items()
            if k.startswith("keelson.dev/") and k != HASH_ANNOTATION
        }
        if annotations:
            kept_meta["annotations"] = annotations
        kept = {"apiVersion": obj.get("apiVersion", "v1"), "kind": kind, "metadata": kept_meta}
        for key in ("type", "data", "spec"):
            if key in obj:
                kept[key] = obj[key]
        self.add(kept)
        return kept

    def keep_secret(self, service: str) -> None:
        """The live Secret as it is (pods keep their credentials, the checksum stays)."""
        secret = self.keep("Secret", secret_name(self.ctx.name, service), service)
        creds = from_secret(secret)
        if creds is not None:
            self.annotations[service] = {CHECKSUM_ANNOTATION: checksum(creds)}

    def keep_live_objects(self, *, only_missing: bool = False) -> None:
        """Keep the live Secrets and egress policies; with `only_missing`, not those the pass
        already decided on (a pass abandoned half-way may have set a password on the server)."""
        for service in self.wanted:
            if self.provider != "external" and not (
                only_missing and ("Secret", secret_name(self.ctx.name, service)) in self.objects
            ):
                self.keep_secret(service)
            if not (only_missing and ("NetworkPolicy", egress_policy_name(service)) in self.objects):
                self.keep("NetworkPolicy", egress_policy_name(service), service)

    def droppable_previous(self) -> list[str]:
        """Services whose database this platform had under postgres, not retained."""
        return [
            s
            for s, e in self.previous.items()
            if e.get("provider") == "postgres" and not str(e.get("message", "")).startswith(RETAINED)
        ]

    def owned_secret_services(self) -> list[str]:
        owned = []
        for obj in self.state.cache.owned_by(self.uid):
            labels = obj.get("metadata", {}).get("labels") or {}
            if obj.get("kind") == "Secret" and labels.get(COMPONENT_LABEL) == DATABASE_COMPONENT:
                owned.append(labels.get("app.kubernetes.io/name", ""))
        return [s for s in owned if s]

    def result(self) -> AreaResult:
        entries = [self.entries[s] for s in sorted(self.entries)]
        status: dict[str, Any] = {}
        if entries or "databases" in self.live_status:
            status["databases"] = entries
        condition = self.condition
        if condition is None:
            if not self.wanted:
                condition = ConditionState(DATABASES_READY, "True", "NoDatabases", "no service declares a database")
            else:
                condition = ConditionState(
                    DATABASES_READY, "True", "DatabasesReady", f"{len(self.wanted)} database(s) in place"
                )
        return AreaResult(
            condition,
            status=status,
            pod_annotations=self.annotations,
            objects=list(self.objects.values()),
            events=self.events,
            retry=self.retry,
            errors=self.errors,
        )

    def token_for(self, service: str, live_secret: dict[str, Any] | None, rotated: bool) -> str | None:
        recorded = ((live_secret or {}).get("metadata", {}).get("annotations") or {}).get(rotation.TOKEN_ANNOTATION)
        if self.rotation and self.rotation.targets(service) and (rotated or live_secret is None):
            return self.rotation.token
        return recorded

    def rotation_due(self, service: str, live_secret: dict[str, Any] | None) -> bool:
        if self.rotation is None or live_secret is None:
            return False
        recorded = (live_secret.get("metadata", {}).get("annotations") or {}).get(rotation.TOKEN_ANNOTATION)
        return self.rotation.due(service, recorded)

    def write_secret(
        self, service: str, creds: Credentials, token: str | None, extra_labels: dict[str, str] | None = None
    ) -> None:
        # The key-encryption key outlives every password: what the service encrypted stays readable.
        remembered = (self.ctx.namespace, self.ctx.name, service)
        kek = (
            key_encryption_key(self.live("Secret", secret_name(self.ctx.name, service), service))
            or self.state.keks.get(remembered)
            or new_key_encryption_key()
        )
        self.state.keks[remembered] = kek
        self.add(
            render_database_secret(self.ctx, service, creds, token=token, extra_labels=extra_labels or {}, kek=kek)
        )
        self.annotations[service] = {CHECKSUM_ANNOTATION: checksum(creds)}
        self.state.memory[(self.ctx.namespace, self.ctx.name, service)] = creds

    def retained_entries(self, removed: list[str], where: str) -> None:
        """Under Retain: what stays, in status and (once, on the transition) in an Event."""
        for service in removed:
            before = self.previous.get(service, {})
            name = before.get("database") or identifier(self.ctx.namespace, self.ctx.name, service)
            message = f"{RETAINED} database and role {name} kept{where} (deletionPolicy Retain); drop them by hand"
            self.entries[service] = entry(
                service, before.get("provider", self.provider), name, "", ready=False, message=message
            )
            if not str(before.get("message", "")).startswith(RETAINED):
                self.events.append(PlatformEvent("Normal", "DatabaseRetained", f"{service}: {message}"))
        for service, before in self.previous.items():
            retained = str(before.get("message", "")).startswith(RETAINED)
            if retained and service not in self.entries and service not in self.wanted:
                self.entries[service] = before

    async def run(self) -> None:
        raise NotImplementedError
