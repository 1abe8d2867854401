"""The Kafka users area: a user per service with the least ACLs it needs (condition
KafkaUsersReady, status.kafkaUsers), when `spec.kafka.authentication` is set.

provider admin  : SCRAM-SHA-512 credentials (AlterUserScramCredentials) and literal ACLs through
                  the Admin API, converged from what the brokers hold; a removed service's user
                  and ACLs are deleted, and so are all of them with the platform (a finalizer),
                  whatever the topics' deletionPolicy: credentials never outlive their service.
                  A spec that stops having Keelson manage them (provider none or strimzi, no
                  authentication) releases them instead: it no longer says how to reach them;
provider strimzi: the KafkaUser objects are rendered children (`render.kafkausers`), their
                  password the one of the service's Secret; this area reports on them.

Both keep each service's credentials in the Secret `<platform>-<service>-kafka` (keys username,
password), which this area writes, and rotate them with the databases' annotation
`keelson.dev/rotate-credentials` (`databases.rotation`): one request rotates a service's
credentials everywhere. Like the databases area, whatever fails, the live Secrets are returned as
they are, so no pod loses its credentials to a broker that is down.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.controller import metrics
from keelson.controller.areas import AreaResult, PlatformEvent
from keelson.controller.cache import ChildCache, controller_uid
from keelson.controller.conditions import ConditionState
from keelson.controller.database_pass import SecretReader
from keelson.controller.kafka_access import KafkaAccess, KafkaAccessProblem
from keelson.databases import rotation
from keelson.kafka.admin import AdminRequestFailed, BrokerUnavailable, KafkaAdmin, raw_acl
from keelson.kafkaclient import KafkaSecurity
from keelson.kafkausers import PASSWORD_KEY, USERNAME_KEY, ServiceUser, kafka_user_name, managed, plan_users
from keelson.render.context import RenderContext
from keelson.render.kafkausers import (
    CHECKSUM_ANNOTATION,
    credentials_checksum,
    render_kafka_secret,
)

log = logging.getLogger("keelson.kafka")

KAFKA_USERS_READY = "KafkaUsersReady"
AdminFactory = Callable[..., KafkaAdmin]


def new_password() -> str:
    return secrets.token_urlsafe(32)


def _plain(secret: dict[str, Any] | None, key: str) -> str | None:
    raw = ((secret or {}).get("data") or {}).get(key)
    try:
        return base64.b64decode(raw).decode() if raw else None
    except (ValueError, UnicodeDecodeError):
        return None


def _principal(username: str) -> str:
    return f"User:{username}"


@dataclass
class _Pass:
    """What one reconcile collects."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    annotations: dict[str, dict[str, str]] = field(default_factory=dict)
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[PlatformEvent] = field(default_factory=list)


def _entry(service: str, username: str, secret: str, *, ready: bool, message: str | None = None) -> dict[str, Any]:
    """One status.kafkaUsers item (`api.status.KafkaUserStatus`); never holds a credential."""
    entry: dict[str, Any] = {"service": service, "user": username, "secret": secret, "ready": ready}
    if message:
        entry["message"] = message[:1024]
    return entry


class KafkaUsersArea:
    condition_type = KAFKA_USERS_READY
    status_key = "kafkaUsers"

    def __init__(self, client: SecretReader | None, cache: ChildCache, admin: AdminFactory = KafkaAdmin) -> None:
        self.cache = cache
        self.admin = admin
        self.access = KafkaAccess(client)
        # Passwords last written per (namespace, platform, service): a Secret deleted by hand is
        # restored unchanged. Lost on restart, when the broker is told the Secret's password again.
        self.memory: dict[tuple[str, str, str], tuple[str, str]] = {}
        # (bootstrap, user, checksum) the brokers were told since this process started: the first
        # pass after a start sets every password once, so a broker and its Secrets cannot disagree.
        self.synced: set[tuple[str, str, str]] = set()

    def needs_cleanup(self, model: MicroservicePlatform) -> bool:
        kafka = model.spec.kafka
        return bool(managed(model.spec) and kafka and kafka.provider == "admin" and kafka.bootstrapServers)

    # -- the credentials of a service --------------------------------------------------------------

    def _live_secret(self, platform: dict[str, Any], ctx: RenderContext, user: ServiceUser) -> dict[str, Any] | None:
        """The user's Secret where its service lives (an attached service's team namespace), if ours."""
        placement = ctx.placements.get(user.service)
        namespace = placement.namespace if placement is not None else platform["metadata"]["namespace"]
        owner = placement.uid if placement is not None else platform["metadata"].get("uid", "")
        live = self.cache.get("Secret", namespace, user.secret)
        return live if live is not None and controller_uid(live) in (owner, None) else None

    def _credentials(
        self, platform: dict[str, Any], ctx: RenderContext, user: ServiceUser, due: rotation.Rotation | None
    ) -> tuple[str, str | None, bool, dict[str, Any] | None]:
        """(password, rotation token to record, whether it is new, live Secret)."""
        meta = platform["metadata"]
        live = self._live_secret(platform, ctx, user)
        recorded = ((live or {}).get("metadata", {}).get("annotations") or {}).get(rotation.TOKEN_ANNOTATION)
        password = _plain(live, PASSWORD_KEY) if _plain(live, USERNAME_KEY) == user.username else None
        if password is None:
            remembered = self.memory.get((meta["namespace"], meta["name"], user.service))
            if remembered and remembered[0] == user.username:
                password = remembered[1]
        if password is not None and live is not None and due is not None and due.due(user.service, recorded):
            return new_password(), due.token, True, live
        if password is None:
            token = due.token if due and due.targets(user.service) else recorded
            return new_password(), token, True, live
        return password, recorded, False, live

    def _keep(self, platform: dict[str, Any], ctx: RenderContext, user: ServiceUser, out: _Pass) -> None:
        """The live Secret as it is: its pods keep their credentials, the checksum stays."""
        live = self._live_secret(platform, ctx, user)
        username, password = _plain(live, USERNAME_KEY), _plain(live, PASSWORD_KEY)
        if live is None or not username or not password:
            return
        kept_meta = {
            "name": live["metadata"]["name"],
            "namespace": live["metadata"]["namespace"],
            "labels": {
                k: v for k, v in (live["metadata"].get("labels") or {}).items() if k.startswith(("app.", "keelson."))
            },
        }
        token = (live["metadata"].get("annotations") or {}).get(rotation.TOKEN_ANNOTATION)
        if token:
            kept_meta["annotations"] = {rotation.TOKEN_ANNOTATION: token}
        out.objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": kept_meta,
                "type": live.get("type"),
                "data": live["data"],
            }
        )
        out.annotations[user.service] = {CHECKSUM_ANNOTATION: credentials_checksum(username, password)}

    def _write(self, ctx: RenderContext, user: ServiceUser, password: str, token: str | None, out: _Pass) -> None:
        out.objects.append(render_kafka_secret(ctx, user, password, token=token))
        out.annotations[user.service] = {CHECKSUM_ANNOTATION: credentials_checksum(user.username, password)}
        self.memory[(ctx.namespace, ctx.name, user.service)] = (user.username, password)

    # -- the Area protocol -------------------------------------------------------------------------

    async def reconcile(self, platform: dict[str, Any], model: MicroservicePlatform) -> AreaResult:
        meta = platform["metadata"]
        ctx = RenderContext(
            name=meta["name"], namespace=meta["namespace"], spec=model.spec, placements=model.placements
        )
        plan = plan_users(model.spec, namespace=ctx.namespace, platform=ctx.name)
        previous = {
            e["service"]: e for e in (platform.get("status") or {}).get(self.status_key) or [] if "service" in e
        }
        wanted = {u.service for u in plan}
        removed = {s: e for s, e in previous.items() if s not in wanted and e.get("provider") == "admin"}
        had_status = self.status_key in (platform.get("status") or {})
        if not plan and not removed:
            cond = ConditionState(KAFKA_USERS_READY, "True", "NoKafkaUsers", "no Kafka user is managed")
            return AreaResult(cond, status={self.status_key: []} if had_status else {})
        kafka = model.spec.kafka
        assert kafka is not None
        out = _Pass()
        if removed and not (managed(model.spec) and kafka.provider == "admin"):
            released = self._release(ctx, removed, out)
            removed = {}
            if not plan:
                cond = ConditionState(
                    KAFKA_USERS_READY, "True", "KafkaUsersReleased", f"{released} Kafka user(s) released, none managed"
                )
                return self._result(cond, out, had_status)
        if kafka.provider == "strimzi":
            cond = self._strimzi(platform, ctx, plan, out)
            return self._result(cond, out, had_status)
        return await self._admin(platform, ctx, plan, removed, out=out, had_status=had_status)

    def _release(self, ctx: RenderContext, removed: dict[str, dict[str, Any]], out: _Pass) -> int:
        """The platform no longer has Keelson manage users through the Admin API (provider none or
        strimzi, or no authentication): the users it made there are released, not deleted. The new
        spec holds no way to reach the brokers they are on (its TLS and admin credentials are gone,
        or its brokers are others), so deleting them would wait forever on a broker the platform has
        left; whoever runs the brokers owns them now, as provider none says. Their Secrets go with
        the area's other objects, so no password stays in the cluster; an event names each user."""
        users = sorted(str(e.get("user") or s) for s, e in removed.items())
        for service in removed:
            self.memory.pop((ctx.namespace, ctx.name, service), None)
        out.events.append(
            PlatformEvent(
                "Normal",
                "KafkaUsersReleased",
                "left on the brokers for whoever runs them (spec.kafka no longer has Keelson manage "
                f"them): {', '.join(users)}",
            )
        )
        log.info("kafka users %s/%s released: %s", ctx.namespace, ctx.name, ", ".join(users))
        return len(users)

    def _result(
        self,
        cond: ConditionState,
        out: _Pass,
        had_status: bool,
        *,
        retry: bool = False,
        errors: list[str] | None = None,
    ) -> AreaResult:
        entries = [out.entries[s] for s in sorted(out.entries)]
        status = {self.status_key: entries} if entries or had_status else {}
        return AreaResult(
            cond,
            status=status,
            pod_annotations=out.annotations,
            objects=out.objects,
            events=out.events,
            retry=retry,
            errors=errors or [],
        )

    def _strimzi(
        self, platform: dict[str, Any], ctx: RenderContext, plan: list[ServiceUser], out: _Pass
    ) -> ConditionState:
        due = rotation.parse((platform["metadata"].get("annotations") or {}).get(rotation.ROTATE_ANNOTATION))
        pending, failing = [], []
        for user in plan:
            password, token, new, _live = self._credentials(platform, ctx, user, due)
            self._write(ctx, user, password, token, out)
            if new and _live is not None:
                out.events.append(PlatformEvent("Normal", "CredentialsRotated", f"{user.service}: Kafka password"))
            live = self.cache.get("KafkaUser", ctx.namespace, kafka_user_name(ctx.name, user.service))
            message = None
            for cond in (live or {}).get("status", {}).get("conditions", []) or []:
                if cond.get("type") == "Ready" and cond.get("status") == "False":
                    message = cond.get("message") or cond.get("reason")
                    failing.append(f"{user.service}: {message}")
            if live is None:
                pending.append(user.service)
            entry = _entry(
                user.service, user.username, user.secret, ready=live is not None and message is None, message=message
            )
            entry["provider"] = "strimzi"
            out.entries[user.service] = entry
        if failing:
            return ConditionState(KAFKA_USERS_READY, "False", "KafkaUserNotReady", "; ".join(failing[:3]))
        if pending:
            return ConditionState(
                KAFKA_USERS_READY, "False", "KafkaUsersPending", f"{len(pending)} KafkaUser(s) pending"
            )
        return ConditionState(KAFKA_USERS_READY, "True", "KafkaUsersApplied", f"{len(plan)} KafkaUser objects")

    async def _admin(
        self,
        platform: dict[str, Any],
        ctx: RenderContext,
        plan: list[ServiceUser],
        removed: dict[str, dict[str, Any]],
        *,
        out: _Pass,
        had_status: bool,
    ) -> AreaResult:
        kafka = ctx.spec.kafka
        assert kafka is not None

        def failed(reason: str, message: str) -> AreaResult:
            for user in plan:
                self._keep(platform, ctx, user, out)
                out.entries[user.service] = {
                    **_entry(user.service, user.username, user.secret, ready=False, message=f"{reason}: {message}"),
                    "provider": "admin",
                }
            for service, entry in removed.items():  # still to delete: remembered in status until then
                out.entries[service] = {**entry, "ready": False, "message": f"removal pending: {reason}"}
            cond = ConditionState(KAFKA_USERS_READY, "False", reason, message[:1024])
            return self._result(cond, out, had_status, retry=True, errors=[f"kafka users: {reason}: {message}"])

        if not kafka.bootstrapServers:
            return failed("NoBootstrapServers", "spec.kafka.bootstrapServers is not set")
        try:
            security = await self.access.security(ctx.namespace, kafka)
        except KafkaAccessProblem as exc:
            return failed(exc.reason, str(exc))
        due = rotation.parse((platform["metadata"].get("annotations") or {}).get(rotation.ROTATE_ANNOTATION))
        decided = [(user, *self._credentials(platform, ctx, user, due)) for user in plan]
        try:
            async with self.admin(kafka.bootstrapServers, security=security) as admin:
                existing = await admin.scram_users(u.username for u in plan)
                to_set = {}
                for user, password, _token, _new, _live in decided:
                    key = (kafka.bootstrapServers, user.username, credentials_checksum(user.username, password))
                    if user.username not in existing or key not in self.synced:
                        to_set[user.username] = password
                await admin.set_passwords(to_set)
                changed_acls = {}
                for user in plan:
                    principal = _principal(user.username)
                    held = await admin.acls(principal)
                    desired = {raw_acl(a.resource_type, a.name, a.operation) for a in user.acls}
                    await admin.create_acls(principal, desired - held)
                    await admin.delete_acls(principal, held - desired)
                    if desired != held:
                        changed_acls[user.service] = (len(desired - held), len(held - desired))
                gone = []
                for service, entry in sorted(removed.items()):
                    username = str(entry.get("user") or "")
                    if username:
                        await admin.delete_acls(_principal(username), everything=True)
                        await admin.delete_users([username])
                    self.memory.pop((ctx.namespace, ctx.name, service), None)
                    gone.append(service)
                metrics.KAFKA_ADMIN_WRITES.inc(admin.writes)
        except BrokerUnavailable as exc:
            return failed("BrokerUnreachable", f"{kafka.bootstrapServers}: {exc}")
        except AdminRequestFailed as exc:
            return failed("AdminRequestFailed", str(exc))
        for user, password, token, new, live in decided:
            self._write(ctx, user, password, token, out)
            self.synced.add((kafka.bootstrapServers, user.username, credentials_checksum(user.username, password)))
            out.entries[user.service] = {
                **_entry(user.service, user.username, user.secret, ready=True),
                "provider": "admin",
            }
            actions = []
            if user.username not in existing:
                actions.append(f"created SCRAM user {user.username}")
            elif new and live is not None:
                actions.append("rotated its Kafka password")
            if user.service in changed_acls:
                added, dropped = changed_acls[user.service]
                actions.append(f"ACLs: {added} added, {dropped} removed")
            if actions:
                reason = "CredentialsRotated" if new and live is not None else "KafkaUserProvisioned"
                out.events.append(PlatformEvent("Normal", reason, f"{user.service}: {'; '.join(actions)}"))
                log.info("kafka users %s/%s %s: %s", ctx.namespace, ctx.name, user.service, "; ".join(actions))
        if gone:
            out.events.append(PlatformEvent("Normal", "KafkaUsersDeleted", f"users and ACLs of: {', '.join(gone)}"))
        cond = ConditionState(
            KAFKA_USERS_READY, "True", "KafkaUsersReady", f"{len(plan)} Kafka user(s) with their ACLs"
        )
        return self._result(cond, out, had_status)

    async def cleanup(self, platform: dict[str, Any], model: MicroservicePlatform) -> AreaResult:
        """The platform is going: every user it had, and their ACLs, go first."""
        kafka = model.spec.kafka
        assert kafka is not None and kafka.bootstrapServers
        meta = platform["metadata"]
        users = {u.username for u in plan_users(model.spec, namespace=meta["namespace"], platform=meta["name"])}
        users |= {str(e["user"]) for e in (platform.get("status") or {}).get(self.status_key) or [] if e.get("user")}
        try:
            security: KafkaSecurity = await self.access.security(meta["namespace"], kafka, deleting=True)
            async with self.admin(kafka.bootstrapServers, security=security) as admin:
                for username in sorted(users):
                    await admin.delete_acls(_principal(username), everything=True)
                await admin.delete_users(users)
                metrics.KAFKA_ADMIN_WRITES.inc(admin.writes)
        except (KafkaAccessProblem, BrokerUnavailable, AdminRequestFailed) as exc:
            return AreaResult(
                ConditionState(KAFKA_USERS_READY, "False", "CleanupFailed", f"cannot delete Kafka users: {exc}"[:1024]),
                retry=True,
                errors=[f"kafka users cleanup: {exc}"],
                done=False,
            )
        return AreaResult(
            ConditionState(KAFKA_USERS_READY, "True", "KafkaUsersDeleted", f"deleted {len(users)} Kafka user(s)"),
            events=[PlatformEvent("Normal", "KafkaUsersDeleted", f"deleted: {', '.join(sorted(users))}")]
            if users
            else [],
        )
