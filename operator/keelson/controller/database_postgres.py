"""Provider postgres: roles and databases on a server, through the admin Secret, and the
credentials Secrets and egress policies of the services (see docs/databases.md)."""

from __future__ import annotations

import logging
from typing import Any

from keelson.controller.areas import PlatformEvent
from keelson.controller.conditions import ConditionState
from keelson.controller.database_pass import DATABASES_READY, DatabasePass, entry
from keelson.databases.admin import AdminConnection, AdminSecretInvalid, parse_admin_secret
from keelson.databases.credentials import Credentials, from_secret
from keelson.databases.naming import identifier, owner_comment, secret_name
from keelson.databases.provisioning import Provisioner, Wanted
from keelson.databases.server import AdminCredentialsRejected, ServerUnreachable, Session, StatementFailed
from keelson.kube.client import ApiError
from keelson.kube.resources import SECRET_KIND
from keelson.render.databases import egress_policy_name, render_database_egress

log = logging.getLogger("keelson.databases")


class PostgresPass(DatabasePass):
    async def admin(self) -> AdminConnection | None:
        ref = self.ctx.spec.databases.adminSecretRef if self.ctx.spec.databases else None
        if ref is None:
            self.fail("AdminSecretMissing", "spec.databases.adminSecretRef is not set", retry=False)
            return None
        remembered = (self.ctx.namespace, ref.name)
        try:
            secret = await self.state.client.get(SECRET_KIND, self.ctx.namespace, ref.name)
        except ApiError as exc:
            self.fail("AdminSecretUnreadable", f"Secret {ref.name}: {exc.status} {exc.reason}")
            return None
        if secret is None and self.deleting and remembered in self.state.admins:
            # Gone with its namespace (or by hand) while the platform is on its way out: the drops
            # its Delete policy asks for use the credentials read while it existed.
            admin = self.state.admins[remembered]
            log.warning("admin Secret %s/%s is gone; dropping with the credentials last read", *remembered)
            self.endpoint = admin.endpoint
            return admin
        if secret is None:
            hint = (
                "; recreate it, or remove the platform's finalizer keelson.dev/cleanup to keep the databases"
                if self.deleting
                else ""
            )
            self.fail("AdminSecretMissing", f"Secret {ref.name} not found in namespace {self.ctx.namespace}{hint}")
            return None
        try:
            admin = parse_admin_secret(secret)
        except AdminSecretInvalid as exc:
            self.fail("AdminSecretInvalid", f"Secret {ref.name}: {exc}")
            return None
        self.state.admins[remembered] = admin
        self.endpoint = admin.endpoint
        return admin

    async def run(self) -> None:
        removed = [s for s in {*self.droppable_previous(), *self.owned_secret_services()} if s not in self.wanted]
        policy = self.ctx.spec.databases.deletionPolicy if self.ctx.spec.databases else None
        if not self.wanted and not removed:
            self.retained_entries([], "")
            return
        admin = await self.admin()
        if admin is None:
            self.unavailable(removed, policy)
            return
        try:
            async with self.state.connector(admin) as session:
                await self.provision(session, admin)
                if policy == "Delete":
                    await self.drop_removed(session, removed)
                else:
                    self.retained_entries(removed, f" on {admin.endpoint}")
        except ServerUnreachable as exc:
            self.fail("ServerUnreachable", str(exc))
            self.unavailable(removed, policy)
        except AdminCredentialsRejected as exc:
            self.fail("AdminCredentialsRejected", str(exc))
            self.unavailable(removed, policy)
        except StatementFailed as exc:
            self.fail("ProvisioningFailed", f"{admin.endpoint}: {exc}")
            self.unavailable(removed, policy)

    def unavailable(self, removed: list[str], policy: str | None) -> None:
        """The server cannot be used now: keep everything as it is and say so per database."""
        assert self.condition is not None
        for service in self.wanted:
            name = secret_name(self.ctx.name, service)
            if ("Secret", name) not in self.objects:
                self.keep_secret(service)
            self.keep("NetworkPolicy", egress_policy_name(service), service)
            if service not in self.entries:
                database = identifier(self.ctx.namespace, self.ctx.name, service)
                why = f"{self.condition.reason}: {self.condition.message}"
                self.entries[service] = entry(service, "postgres", database, name, ready=False, message=why)
        if policy == "Delete":
            for service in removed:  # still to drop: its Secret marks it until then
                self.keep("Secret", secret_name(self.ctx.name, service), service)
                before = self.previous.get(service, {})
                why = "drop pending: the server is not available"
                self.entries[service] = entry(service, "postgres", before.get("database"), "", ready=False, message=why)
        else:
            self.retained_entries(removed, "")

    async def provision(self, session: Session, admin: AdminConnection) -> None:
        ns, platform = self.ctx.namespace, self.ctx.name
        wanted: list[Wanted] = []
        live_secrets: dict[str, dict[str, Any] | None] = {}
        for service in self.wanted:
            name = identifier(ns, platform, service)
            base = Credentials(admin.host, admin.port, name, name, "", admin.sslmode)
            live = self.live("Secret", secret_name(platform, service), service)
            live_secrets[service] = live
            current = from_secret(live)
            if current is not None and current.user != name:
                current = None  # someone else's content: not ours to trust
            remembered = self.state.memory.get((ns, platform, service))
            wanted.append(
                Wanted(
                    service=service,
                    name=name,
                    comment=owner_comment(ns, platform, service),
                    base=base,
                    current=current.at(admin.host, admin.port, admin.sslmode) if current else None,
                    recovered=remembered.at(admin.host, admin.port, admin.sslmode)
                    if remembered and current is None and remembered.user == name
                    else None,
                    rotate=self.rotation_due(service, live),
                )
            )
        provisioner = Provisioner(session, self.state.verified)
        results = await provisioner.converge(wanted)
        problems = []
        for w, done in zip(wanted, results, strict=True):
            secret = secret_name(platform, w.service)
            if done.creds is None:
                problems.append(f"{w.service}: {done.problem}")
                self.keep_secret(w.service)
                self.keep("NetworkPolicy", egress_policy_name(w.service), w.service)
                self.entries[w.service] = entry(
                    w.service, "postgres", w.name, secret, ready=False, message=done.problem
                )
                continue
            self.write_secret(w.service, done.creds, self.token_for(w.service, live_secrets[w.service], done.rotated))
            self.add(render_database_egress(self.ctx, w.service, admin.host, admin.port))
            self.entries[w.service] = entry(w.service, "postgres", w.name, secret, ready=True)
            if done.actions:
                log.info("databases %s/%s %s: %s", ns, platform, w.service, "; ".join(done.actions))
                reason = "CredentialsRotated" if w.rotate and done.rotated else "DatabaseProvisioned"
                self.events.append(PlatformEvent("Normal", reason, f"{w.service}: {'; '.join(done.actions)}"))
        if problems:
            self.fail("DatabaseConflict", "; ".join(problems), retry=False)
        elif self.wanted:
            self.condition = ConditionState(
                DATABASES_READY, "True", "DatabasesReady", f"{len(self.wanted)} database(s) on {admin.endpoint}"
            )

    async def drop_removed(self, session: Session, removed: list[str]) -> None:
        provisioner = Provisioner(session, self.state.verified)
        for service in sorted(removed):
            name = identifier(self.ctx.namespace, self.ctx.name, service)
            problem = await provisioner.drop(name, owner_comment(self.ctx.namespace, self.ctx.name, service))
            if problem:
                self.keep("Secret", secret_name(self.ctx.name, service), service)
                self.entries[service] = entry(
                    service, "postgres", name, "", ready=False, message=f"drop refused: {problem}"
                )
                self.fail("DropFailed", f"{service}: {problem}", retry=False)
                continue
            self.state.memory.pop((self.ctx.namespace, self.ctx.name, service), None)
            self.events.append(
                PlatformEvent(
                    "Normal", "DatabaseDropped", f"{service}: dropped database and role {name} (deletionPolicy Delete)"
                )
            )

    async def drop_all(self, services: list[str]) -> list[str]:
        admin = await self.admin()
        if admin is None:
            assert self.condition is not None
            return [self.condition.message]
        problems = []
        try:
            async with self.state.connector(admin) as session:
                provisioner = Provisioner(session, self.state.verified)
                for service in services:
                    name = identifier(self.ctx.namespace, self.ctx.name, service)
                    problem = await provisioner.drop(name, owner_comment(self.ctx.namespace, self.ctx.name, service))
                    if problem:
                        problems.append(f"{service}: {problem}")
        except (ServerUnreachable, AdminCredentialsRejected, StatementFailed) as exc:
            problems.append(f"cannot drop databases: {exc}")
        return problems
