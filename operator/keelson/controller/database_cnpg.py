"""Provider cloudnative-pg: the credentials Secrets (first), then the Cluster's managed roles that
read them, and a Database per service; readiness from what CloudNativePG reports on them."""

from __future__ import annotations

from keelson.controller.areas import PlatformEvent
from keelson.controller.conditions import ConditionState
from keelson.controller.database_pass import DATABASES_READY, RETAINED, DatabasePass, entry
from keelson.databases.credentials import Credentials, from_secret, new_password
from keelson.databases.naming import identifier, secret_name
from keelson.render import cnpg

CNPG_RELOAD = {"cnpg.io/reload": "true"}  # CloudNativePG re-reads labelled Secrets on change


class CloudNativePgPass(DatabasePass):
    async def run(self) -> None:
        ctx = self.ctx
        host = cnpg.read_write_host(ctx)
        cluster = cnpg.cluster_name(ctx)
        live_cluster = self.state.cache.get("Cluster", ctx.namespace, cluster)
        live_roles = {
            r.get("name")
            for r in ((live_cluster or {}).get("spec", {}).get("managed", {}) or {}).get("roles", []) or []
        }
        with_role = []
        pending = []
        for service in self.wanted:
            name = identifier(ctx.namespace, ctx.name, service)
            secret = secret_name(ctx.name, service)
            live = self.live("Secret", secret, service)
            current = from_secret(live) or self.state.memory.get((ctx.namespace, ctx.name, service))
            base = Credentials(host, cnpg.PORT, name, name, "")
            rotate = self.rotation_due(service, live)
            if current is None or current.user != name or rotate:
                # CloudNativePG sets the role's password from the Secret (it watches it).
                creds = base.with_password(new_password())
                if rotate:
                    self.events.append(
                        PlatformEvent("Normal", "CredentialsRotated", f"{service}: new password for role {name}")
                    )
            else:
                creds = current.at(host, cnpg.PORT, None)
            self.write_secret(service, creds, self.token_for(service, live, rotate), CNPG_RELOAD)
            if live is not None or name in live_roles:
                with_role.append(service)
            self.add(cnpg.render_database(ctx, service))
            database = self.state.cache.get("Database", ctx.namespace, f"{ctx.name}-{service}")
            db_status = (database or {}).get("status") or {}
            ready = db_status.get("applied") is True
            message = None if ready else (db_status.get("message") or "waiting for CloudNativePG to apply the Database")
            if not ready:
                pending.append(f"{service}: {message}")
            self.entries[service] = entry(service, "cloudnative-pg", name, secret, ready=ready, message=message)
        if cnpg.emits_cluster(ctx) and self.wanted:
            self.add(cnpg.render_cluster(ctx, with_role))
        removed = [
            s for s in self.previous if s not in self.wanted and self.previous[s].get("provider") == "cloudnative-pg"
        ]
        removed = [s for s in removed if not str(self.previous[s].get("message", "")).startswith(RETAINED)]
        if cnpg.retain(ctx):
            self.retained_entries(removed, f" in Cluster {cluster}")
        else:
            for service in removed:
                self.events.append(
                    PlatformEvent(
                        "Normal", "DatabaseDropped", f"{service}: Database object deleted; CloudNativePG drops it"
                    )
                )
            self.retained_entries([], "")
        if pending:
            self.condition = ConditionState(DATABASES_READY, "False", "DatabasesPending", "; ".join(pending)[:1024])
