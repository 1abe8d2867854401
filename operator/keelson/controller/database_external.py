"""Provider external: the user's Secret per service, checked for existence and keys; Keelson wires
it into the Deployment and allows egress to the server it names, and creates nothing else."""

from __future__ import annotations

from typing import Any

from keelson.controller.database_pass import DatabasePass, entry
from keelson.databases.credentials import endpoint_of, from_secret
from keelson.kube.client import ApiError
from keelson.kube.resources import SECRET_KIND
from keelson.render.databases import ENV_KEYS, REQUIRED_KEY, egress_policy_name, render_database_egress


class ExternalPass(DatabasePass):
    async def run(self) -> None:
        problems = []
        for service in self.wanted:
            database = self.ctx.spec.service(service).database
            assert database is not None and database.secretRef is not None
            name = database.secretRef.name
            try:
                secret = await self.state.client.get(SECRET_KIND, self.ctx.namespace, name)
            except ApiError as exc:
                self.keep("NetworkPolicy", egress_policy_name(service), service)
                self.fail("SecretUnreadable", f"{service}: Secret {name}: {exc.status} {exc.reason}")
                self.entries[service] = entry(
                    service, "external", None, name, ready=False, message=f"cannot read: {exc.reason}"
                )
                continue
            message = None
            if secret is None:
                message = f"Secret {name} not found"
            elif REQUIRED_KEY not in (secret.get("data") or {}):
                optional = ", ".join(sorted(set(ENV_KEYS.values()) - {REQUIRED_KEY}))
                message = f"Secret {name} has no key {REQUIRED_KEY} (optional: {optional})"
            if message:
                problems.append(f"{service}: {message}")
            else:
                self.egress_from_external(service, secret)
            creds = from_secret(secret)
            dbname = creds.dbname if creds else None
            self.entries[service] = entry(service, "external", dbname, name, ready=message is None, message=message)
        if problems and self.condition is None:
            reason = "SecretMissing" if any("not found" in p for p in problems) else "SecretKeysMissing"
            self.fail(reason, "; ".join(problems)[:1024])

    def egress_from_external(self, service: str, secret: dict[str, Any] | None) -> None:
        endpoint = endpoint_of(secret)
        if endpoint is not None:
            self.add(render_database_egress(self.ctx, service, *endpoint))
