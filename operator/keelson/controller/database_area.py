"""The databases area: each service's own database (condition DatabasesReady, status.databases).

provider postgres      : roles and databases on a server, through the admin Secret; the
                         credentials Secrets are this area's objects (`databases.provisioning`);
provider cloudnative-pg: a CloudNativePG Cluster (or the named one), managed roles and Database
                         objects, plus the credentials Secrets (`render.cnpg`);
provider external      : the user's Secrets, checked for existence and keys.

Area objects that are not returned are pruned. So whatever fails (the admin Secret, the server,
this code), the Secrets and egress policies that exist are returned as they are, and the pods'
checksum annotations stay put: only a deliberate rotation or a lost Secret changes a password.

Every pass has a deadline: a server that accepts connections and then never answers must not
hold a worker (and the platform's workloads) for longer than that. At the deadline the pass is
abandoned like a failed one: what it decided so far stands, the rest is kept as it is live.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.controller.areas import AreaResult, PlatformEvent
from keelson.controller.cache import ChildCache
from keelson.controller.conditions import ConditionState
from keelson.controller.database_cnpg import CloudNativePgPass
from keelson.controller.database_external import ExternalPass
from keelson.controller.database_pass import DATABASES_READY, AreaState, Connector, DatabasePass, SecretReader
from keelson.controller.database_postgres import PostgresPass
from keelson.controller.deadlines import within
from keelson.databases.server import connect

log = logging.getLogger("keelson.databases")

# Longer than a healthy pass takes (a few catalog reads and, on the first converge, one CREATE per
# database): a pass cut short by it keeps its DDL, so the next pass goes on from there.
DEADLINE_SECONDS = float(os.environ.get("KEELSON_DATABASES_DEADLINE_SECONDS", "30"))

PASSES: dict[str, type[DatabasePass]] = {
    "postgres": PostgresPass,
    "cloudnative-pg": CloudNativePgPass,
    "external": ExternalPass,
}


def provider_of(model: MicroservicePlatform) -> str:
    databases = model.spec.databases
    return (databases.provider if databases else None) or "postgres"


class DatabasesArea:
    condition_type = DATABASES_READY
    status_key = "databases"

    def __init__(
        self,
        client: SecretReader,
        cache: ChildCache,
        connector: Connector = connect,
        *,
        deadline: float = DEADLINE_SECONDS,
    ) -> None:
        self.state = AreaState(client, cache, connector)
        self.deadline = deadline

    # -- the Area protocol ---------------------------------------------------------------------

    def needs_cleanup(self, model: MicroservicePlatform) -> bool:
        databases = model.spec.databases
        return bool(
            databases
            and databases.deletionPolicy == "Delete"
            and provider_of(model) == "postgres"  # CloudNativePG drops through databaseReclaimPolicy
            and any(s.database for s in model.spec.services)
        )

    async def reconcile(self, platform: dict[str, Any], model: MicroservicePlatform) -> AreaResult:
        run = PASSES[provider_of(model)](self.state, platform, model)
        try:
            if not await within(run.run(), self.deadline):
                run.keep_live_objects(only_missing=True)
                run.fail("ServerUnresponsive", self._overdue(run))
        except Exception as exc:  # a bug here must not prune the Secrets the pods depend on
            log.exception("databases of %s/%s failed", run.ctx.namespace, run.ctx.name)
            run.keep_live_objects()
            run.fail("InternalError", f"{type(exc).__name__}: {exc}"[:1024])
        return run.result()

    def _overdue(self, run: DatabasePass) -> str:
        where = f"the server {run.endpoint}" if run.endpoint else "the databases pass"
        return f"{where} did not answer within {self.deadline:g} s; abandoned, retried with backoff"

    async def cleanup(self, platform: dict[str, Any], model: MicroservicePlatform) -> AreaResult:
        run = PostgresPass(self.state, platform, model)
        names = {s.name for s in model.spec.services if s.database} | set(run.droppable_previous())
        problems: list[str] = []

        async def drop() -> None:
            problems.extend(await run.drop_all(sorted(names)))

        if not await within(drop(), self.deadline):
            problems = [self._overdue(run)]
        if problems:
            return AreaResult(
                ConditionState(DATABASES_READY, "False", "CleanupFailed", "; ".join(problems)[:1024]),
                retry=True,
                errors=[f"databases cleanup: {p}" for p in problems],
                done=False,
            )
        return AreaResult(
            ConditionState(DATABASES_READY, "True", "DatabasesDropped", f"dropped {len(names)} database(s)"),
            events=[PlatformEvent("Normal", "DatabasesDropped", f"dropped: {', '.join(sorted(names))}")]
            if names
            else [],
        )
