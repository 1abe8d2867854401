"""kopf registrations: watches feed indexes (the caches) and a work queue; workers reconcile.

Only `@kopf.index` and `@kopf.on.event` are used. They persist nothing on the objects (no
finalizers, no progress annotations), so the operator's own bookkeeping never writes to the API;
and kopf holds every handler until all indexes are listed, so the first reconcile after a start
already sees every existing child and re-applies nothing that is in place.

With leader election (two replicas, see leadership.py), every replica runs the watches and
indexes, so a standby's caches are warm; only the leader runs the workers and the resync, which
are the only writers, Kubernetes objects and external areas (databases, Kafka) alike. The standby
writes nothing but its attempts at the Lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf
from kopf._cogs.structs import references

from keelson.api import components, platformservice, v1alpha1
from keelson.api.platformservice import platform_key_of
from keelson.controller import kopfpatch, metrics
from keelson.controller.admission import review_definition, review_definition_delete, review_platform
from keelson.controller.areas import Area
from keelson.controller.cache import DictCache, owner_entry, snapshot
from keelson.controller.components import DefinitionCatalog, users_of
from keelson.controller.conditions import ConditionState
from keelson.controller.crdcheck import CrdCheck
from keelson.controller.database_area import DatabasesArea
from keelson.controller.gating import GatedArea, database_children, kafka_user_children, topic_children
from keelson.controller.identity import kopf_session, lease_namespace, new_identity, user_agent
from keelson.controller.issuer import IssuerCheck
from keelson.controller.kafka_users import KafkaUsersArea
from keelson.controller.leadership import LEASE_NAME, Elector, KubeLeaseStore, Timings
from keelson.controller.queue import WorkQueue
from keelson.controller.reconciler import Reconciler
from keelson.controller.rescanning import keep_watching
from keelson.controller.topic_area import TopicsArea
from keelson.kube.client import KubeClient
from keelson.kube.resources import CHILD_KINDS
from keelson.render import DEFAULT_REFERENCE_IMAGE
from keelson.render.labels import PLATFORM_LABEL, PLATFORM_NAMESPACE_LABEL

kopfpatch.install()  # a deleted CRD must not end the operator (see kopfpatch)

log = logging.getLogger("keelson.operator")

MANAGED = {"app.kubernetes.io/managed-by": "keelson"}
RESYNC_SECONDS = float(os.environ.get("KEELSON_RESYNC_SECONDS", "60"))
WORKERS = int(os.environ.get("KEELSON_WORKERS", "4"))
# A pass that runs longer is cancelled and retried with backoff, whatever it waits on: no worker
# is held for good. Far above a healthy pass (about 50 s to apply 1,400 objects of a 200-service
# platform; see docs/benchmarks.md), and above the areas' own deadlines, which report which
# server does not answer.
PASS_DEADLINE_SECONDS = float(os.environ.get("KEELSON_PASS_DEADLINE_SECONDS", "300"))

PlatformKey = tuple[str, str]


class Controller:
    """State shared by the handlers: the caches, the queue and the workers."""

    def __init__(self) -> None:
        self.queue = WorkQueue()
        self.cache = DictCache()
        self.platforms: Mapping[Any, Any] = {}
        # PlatformServices by the platform they name, and the namespaces' labels (keelson.tenancy).
        self.platform_service_index: Mapping[Any, Any] = {}
        self.namespace_index: Mapping[Any, Any] = {}
        self.named: dict[str, PlatformKey] = {}  # PlatformService uid -> the platform it last named
        self.catalog = DefinitionCatalog()
        self.client: KubeClient | None = None
        self.reconciler: Reconciler | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.areas: list[GatedArea] = []
        self.crd_check: CrdCheck | None = None
        self.issuer_check: IssuerCheck | None = None
        self.insights: references.Insights | None = None  # set by main, handed to kopf
        self.identity = new_identity(os.environ)
        self.leader_election = False  # set by main
        self.elector: Elector | None = None
        self.writing = False  # the workers and the resync run: we lead, or run alone
        self.started = False
        self.lost = asyncio.Event()  # leadership lost: main ends the process

    def attach(self, indexes: Mapping[str, Any]) -> None:
        """kopf hands its indexes to handlers as keyword arguments; keep live references."""
        if "platform_index" in indexes:
            self.platforms = indexes["platform_index"]
        if "definition_index" in indexes:
            self.catalog.index = indexes["definition_index"]
        if "platform_service_index" in indexes:
            self.platform_service_index = indexes["platform_service_index"]
        if "namespace_index" in indexes:
            self.namespace_index = indexes["namespace_index"]
        for kind in CHILD_KINDS:
            index = indexes.get(_index_id(kind.kind))
            if index is not None:
                self.cache.stores[kind.kind] = index
            owners = indexes.get(_owner_index_id(kind.kind))
            if owners is not None:
                self.cache.owners[kind.kind] = owners

    def platform(self, key: PlatformKey) -> dict[str, Any] | None:
        store = self.platforms.get(key)
        return next(iter(store), None) if store is not None else None

    def platform_services(self, key: PlatformKey) -> list[dict[str, Any]]:
        store = self.platform_service_index.get(key)
        return list(store) if store is not None else []

    def namespace_labels(self) -> dict[str, Mapping[str, str]]:
        return {name: next(iter(store), {}) for name, store in list(self.namespace_index.items())}

    async def start(self, settings: kopf.OperatorSettings | None = None) -> None:
        self.client = KubeClient(user_agent=user_agent(self.identity))
        image = os.environ.get("KEELSON_REFERENCE_IMAGE", DEFAULT_REFERENCE_IMAGE)
        # External work runs when its inputs change or at least once per resync, not on every event
        # of a child (a Deployment's status, while it rolls out): see gating.py. A little under the
        # resync interval, so that the resync pass itself finds the last run due.
        max_age = RESYNC_SECONDS * 0.9
        self.areas = [
            GatedArea(DatabasesArea(self.client, self.cache), self.cache, watched=database_children, max_age=max_age),
            GatedArea(TopicsArea(self.cache, client=self.client), self.cache, watched=topic_children, max_age=max_age),
            GatedArea(
                KafkaUsersArea(self.client, self.cache), self.cache, watched=kafka_user_children, max_age=max_age
            ),
        ]
        areas: list[Area] = list(self.areas)
        # Before the first pass, so that a stale CRD is reported from the first status on. A read:
        # standbys check too, so their logs say the same.
        self.crd_check = CrdCheck(self.client)
        await self.crd_check.run()
        self.reconciler = Reconciler(
            self.client,
            self.cache,
            reference_image=image,
            areas=areas,
            notices=self._notices,
            definitions=self.catalog.definitions,
            platform_services=self.platform_services,
            namespace_labels=self.namespace_labels,
        )
        self.issuer_check = IssuerCheck(self.client)
        self.reconciler.token_issuer = await self.issuer_check.run()
        self.tasks = []
        if self.insights is not None and settings is not None:
            # Reads only: a standby keeps watching kinds that appear later, too.
            watching = keep_watching(
                insights=self.insights, registry=kopf.get_default_registry(), settings=settings, kinds=CHILD_KINDS
            )
            self.tasks.append(asyncio.create_task(watching))
        if self.leader_election:
            namespace = lease_namespace(os.environ)
            if namespace is None:
                raise kopf.PermanentError("leader election needs the operator's namespace: set POD_NAMESPACE")
            store = KubeLeaseStore(self.client, namespace)
            self.elector = Elector(store, identity=self.identity, timings=Timings.from_env(os.environ))
            log.info("leader election: %s is a candidate for Lease %s/%s", self.identity, namespace, LEASE_NAME)
            self.tasks.append(asyncio.create_task(self._lead()))
        else:
            self._start_writing()
        self.started = True

    def ready(self) -> bool:
        """Ready to lead: started, and the API server answers the elector. True on a healthy
        standby too, so that a PodDisruptionBudget counts it (see the chart)."""
        return self.started and (self.elector is None or self.elector.leading or self.elector.in_contact())

    def _start_writing(self) -> None:
        self.writing = True
        self.tasks.extend(asyncio.create_task(self._worker(i)) for i in range(WORKERS))
        self.tasks.append(asyncio.create_task(self._resync()))

    async def _lead(self) -> None:
        assert self.elector is not None
        await self.elector.acquire()
        log.info("leading as %s: reconciling every known platform", self.identity)
        writers = len(self.tasks)
        self._start_writing()
        # The standby's caches are warm, but nothing it saw as a standby was acted on: every
        # platform it knows gets one pass now.
        for key in list(self.platforms.keys()):
            self.queue.add(key)
        try:
            await self.elector.hold()
        except asyncio.CancelledError:
            raise  # stop(): a shutdown, which releases the lease after the workers stopped
        except Exception:  # whatever broke the renewals, the workers must not outlive them
            log.exception("renewing the lease failed unexpectedly: stepping down")
        # Leadership lost: stop writing at once; main then ends the process, and the pod restarts
        # as a fresh candidate (controller-runtime does the same).
        self.writing = False
        for task in self.tasks[writers:]:
            task.cancel()
        await asyncio.gather(*self.tasks[writers:], return_exceptions=True)
        self.lost.set()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.elector is not None:
            # After the workers stopped: the standby may take over at once (ReleaseOnCancel).
            await self.elector.release()
        if self.client is not None:
            await self.client.aclose()

    async def _resync(self) -> None:
        """Level-based safety net: reconcile every platform periodically, whatever the events.
        A resync of an unchanged platform writes nothing (see drift.py)."""
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            if self.crd_check is not None:
                await self.crd_check.run()  # the CRD may have been upgraded since
            if self.issuer_check is not None and self.reconciler is not None:
                self.reconciler.token_issuer = await self.issuer_check.run()  # keys rotate
            for key in {*self.platforms.keys(), *self.platform_service_index.keys()}:
                self.queue.add(key)

    def _notices(self) -> list[ConditionState]:
        """Conditions about the operator's installation, reported on every platform."""
        crd = self.crd_check.condition if self.crd_check is not None else None
        return [crd] if crd is not None else []

    async def _worker(self, number: int) -> None:
        assert self.reconciler is not None
        while True:
            key = await self.queue.get()
            try:
                if self.elector is not None and not self.elector.valid():
                    continue  # leadership is ending (see Elector.valid); the next leader queues all
                platform = self.platform(key)  # type: ignore[arg-type]
                if platform is None:
                    metrics.forget_platform(*key)  # type: ignore[misc]
                    orphans = self.platform_services(key)  # type: ignore[arg-type]
                    if orphans:
                        outcome = await self.reconciler.orphaned(key, orphans)  # type: ignore[arg-type]
                        if outcome.retry:
                            self.queue.retry(key)
                        else:
                            self.queue.forget(key)
                    continue
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                    # that arrives as the pass ends, and stop() would then wait for ever.
                    async with asyncio.timeout(PASS_DEADLINE_SECONDS):
                        outcome = await self.reconciler.reconcile(platform)
                except TimeoutError:
                    delay = self.queue.retry(key)
                    metrics.RECONCILE_ERRORS.inc()
                    log.error(
                        "reconcile of %s exceeded its %.0fs deadline; retrying in %.0fs",
                        key,
                        PASS_DEADLINE_SECONDS,
                        delay,
                    )
                    continue
                if outcome.retry:
                    delay = self.queue.retry(key)
                    log.warning("reconcile of %s failed, retrying in %.0fs: %s", key, delay, "; ".join(outcome.errors))
                else:
                    self.queue.forget(key)
                    if outcome.requeue_after is not None:
                        self.queue.add_after(key, outcome.requeue_after)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one platform's failure kill a worker
                delay = self.queue.retry(key)
                log.exception("reconcile of %s crashed; retrying in %.0fs", key, delay)
            finally:
                self.queue.done(key)


CONTROLLER = Controller()


def _index_id(kind: str) -> str:
    return f"children_{kind.lower()}"


def _owner_index_id(kind: str) -> str:
    return f"owned_{kind.lower()}"


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Watches time out on both ends, so a silently dead connection is noticed and re-established.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    # No kopf peering: it writes from every replica and its paused replicas stop watching. Two
    # replicas elect their leader on a Lease instead (leadership.py).
    settings.peering.standalone = True
    # Events are posted by the reconciler on condition transitions only, not for every log line.
    settings.posting.enabled = False
    # Watch only Keelson's children, filtered by the API server: memory stays flat however many
    # unrelated Deployments or ConfigMaps the cluster holds.
    for kind in CHILD_KINDS:
        settings.watching.label_selectors[kind.group, kind.version, kind.plural] = (
            "app.kubernetes.io/managed-by=keelson"
        )
    server = webhook_server(os.environ)
    if server is not None:
        settings.admission.server = server
    await CONTROLLER.start(settings)


def webhook_server(env: Mapping[str, str]) -> kopf.WebhookServer | None:
    """The validating webhook's HTTPS server, when the chart (or the dev stack) gave it a
    certificate: KEELSON_WEBHOOK_CERT and KEELSON_WEBHOOK_KEY (files), on KEELSON_WEBHOOK_ADDR
    (default all interfaces) and KEELSON_WEBHOOK_PORT (default 9443). Every replica serves it, the
    standby too: its caches are warm, and admission must not wait for an election."""
    cert, key = env.get("KEELSON_WEBHOOK_CERT"), env.get("KEELSON_WEBHOOK_KEY")
    if not cert or not key:
        return None
    return kopf.WebhookServer(
        addr=env.get("KEELSON_WEBHOOK_ADDR", "0.0.0.0"),
        port=int(env.get("KEELSON_WEBHOOK_PORT", "9443")),
        certfile=cert,
        pkeyfile=key,
    )


@kopf.on.login()
async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
    """kopf's usual login (the kubernetes client's kubeconfig or in-cluster credentials), with
    this process's identity in the user agent, as Keelson's own client has it."""
    info = kopf.login_via_client(**kwargs)
    return kopf_session(info, user_agent(CONTROLLER.identity)) if info is not None else None


@kopf.on.cleanup()
async def shutdown(**_: Any) -> None:
    await CONTROLLER.stop()


@kopf.on.probe(id="workers")
def workers_alive(**_: Any) -> bool:
    alive = all(not t.done() for t in CONTROLLER.tasks)
    if not alive:
        raise kopf.PermanentError("a worker task has stopped")
    return True


@kopf.index(v1alpha1.GROUP, v1alpha1.VERSION, v1alpha1.PLURAL, id="platform_index")
def platform_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[PlatformKey, dict[str, Any]]:
    return {(namespace or "", name): snapshot(body)}


@kopf.on.event(v1alpha1.GROUP, v1alpha1.VERSION, v1alpha1.PLURAL)
async def platform_changed(namespace: str | None, name: str, type: str | None, body: kopf.Body, **kwargs: Any) -> None:
    CONTROLLER.attach(kwargs)
    if type == "DELETED":
        for area in CONTROLLER.areas:
            area.forget(str(body.get("metadata", {}).get("uid", "")))
    if type == "DELETED" and CONTROLLER.reconciler is not None:
        # Gone for good: say what outlives it (Retain) while its last status is still at hand.
        # An Event is a write: the leader's alone.
        if CONTROLLER.writing:
            await CONTROLLER.reconciler.report_retained(snapshot(body))
        if CONTROLLER.platform_services((namespace or "", name)):
            CONTROLLER.queue.add((namespace or "", name))  # its attached services: refused, pruned
        return
    CONTROLLER.queue.add((namespace or "", name))


@kopf.index(v1alpha1.GROUP, v1alpha1.VERSION, components.DEFINITION_PLURAL, id="definition_index")
def definition_index(name: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {name: snapshot(body)}


@kopf.on.event(v1alpha1.GROUP, v1alpha1.VERSION, components.DEFINITION_PLURAL)
async def definition_changed(body: kopf.Body, **kwargs: Any) -> None:
    """A version published or withdrawn: the platforms using its type resolve again (those pinned
    elsewhere render the same objects and write nothing)."""
    CONTROLLER.attach(kwargs)
    type_ = str((body.get("spec") or {}).get("type", ""))
    platforms: list[tuple[Any, dict[str, Any]]] = [
        (key, next(iter(store), {})) for key, store in list(CONTROLLER.platforms.items())
    ]
    # Services PlatformServices attached: their platform renders their components.
    platforms += [
        (key, {"spec": {"services": [ps.get("spec") or {}]}})
        for key, store in list(CONTROLLER.platform_service_index.items())
        for ps in store
    ]
    for key in users_of(platforms, type_):
        CONTROLLER.queue.add(key)


@kopf.index(v1alpha1.GROUP, v1alpha1.VERSION, platformservice.PLURAL, id="platform_service_index")
def platform_service_index(body: kopf.Body, **_: Any) -> dict[PlatformKey, dict[str, Any]]:
    key = platform_key_of(body)
    return {key: snapshot(body)} if key is not None else {}


@kopf.on.event(v1alpha1.GROUP, v1alpha1.VERSION, platformservice.PLURAL)
async def platform_service_changed(type: str | None, body: kopf.Body, **kwargs: Any) -> None:
    """A team's service changed: the platform it names decides again (and the one it named
    before, which prunes what it had of it)."""
    CONTROLLER.attach(kwargs)
    uid = str(body.get("metadata", {}).get("uid", ""))
    key = platform_key_of(body)
    before = CONTROLLER.named.pop(uid, None) if type == "DELETED" or key is None else CONTROLLER.named.get(uid)
    if key is not None and type != "DELETED":
        CONTROLLER.named[uid] = key
    for target in (key, before):
        if target is not None:
            CONTROLLER.queue.add(target)


@kopf.index("", "v1", "namespaces", id="namespace_index")
def namespace_index(name: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, str]]:
    return {name: dict(body.get("metadata", {}).get("labels") or {})}


@kopf.on.event("", "v1", "namespaces")
async def namespace_labels_changed(**kwargs: Any) -> None:
    """A namespace's labels changed: platforms with attached services decide again
    (spec.tenancy.namespaceSelector)."""
    CONTROLLER.attach(kwargs)
    for key in list(CONTROLLER.platform_service_index.keys()):
        CONTROLLER.queue.add(key)


def _refuse(problems: list[str]) -> None:
    if problems:
        raise kopf.AdmissionError("\n".join(problems))


def validate_platform(body: kopf.Body, **kwargs: Any) -> None:
    CONTROLLER.attach(kwargs)
    _refuse(review_platform(body, CONTROLLER.catalog.definitions()))


def validate_definition(body: kopf.Body, **kwargs: Any) -> None:
    CONTROLLER.attach(kwargs)
    if kwargs.get("operation") == "DELETE":
        platforms: list[tuple[str, dict[str, Any]]] = [
            (f"{key[0]}/{key[1]}", next(iter(store), {})) for key, store in list(CONTROLLER.platforms.items())
        ]
        attached = [
            (f"{(ps.get('metadata') or {}).get('namespace')}/{(ps.get('metadata') or {}).get('name')}", ps)
            for store in list(CONTROLLER.platform_service_index.values())
            for ps in store
        ]
        _refuse(review_definition_delete(body, platforms, CONTROLLER.catalog.definitions(), attached))
    else:
        _refuse(review_definition(body))


# Registered only where admission is served: kopf refuses to run admission handlers without a
# server, and an operator without a certificate (webhook.enabled=false, a test's local process)
# still validates everything at reconcile time.
if webhook_server(os.environ) is not None:
    kopf.on.validate(
        v1alpha1.GROUP, v1alpha1.VERSION, v1alpha1.PLURAL, id="platforms", operations=["CREATE", "UPDATE"]
    )(validate_platform)
    kopf.on.validate(
        v1alpha1.GROUP,
        v1alpha1.VERSION,
        components.DEFINITION_PLURAL,
        id="componentdefinitions",
        operations=["CREATE", "UPDATE", "DELETE"],
    )(validate_definition)


def _register_child(group: str, version: str, plural: str, kind: str) -> None:
    def index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
        return {(namespace or "", name): snapshot(body)}

    def owners(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[str, tuple[str, str]]:
        return owner_entry(namespace or "", name, body)

    def changed(namespace: str | None, body: kopf.Body, **kwargs: Any) -> None:
        CONTROLLER.attach(kwargs)
        labels = body.get("metadata", {}).get("labels", {})
        platform = labels.get(PLATFORM_LABEL)
        if platform:
            # An attached service's objects live in its team's namespace, and say where the platform is.
            CONTROLLER.queue.add((labels.get(PLATFORM_NAMESPACE_LABEL) or namespace or "", platform))

    kopf.index(group, version, plural, labels=MANAGED, id=_index_id(kind))(index)
    kopf.index(group, version, plural, labels=MANAGED, id=_owner_index_id(kind))(owners)
    kopf.on.event(group, version, plural, labels=MANAGED, id=f"{kind.lower()}_changed")(changed)


for _kind in CHILD_KINDS:
    _register_child(_kind.group, _kind.version, _kind.plural, _kind.kind)
