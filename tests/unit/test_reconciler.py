"""The reconcile pass against an in-memory API (the real API server is exercised in e2e/)."""

import copy
from typing import Any

from keelson.controller.cache import DictCache
from keelson.controller.reconciler import FINALIZER, Reconciler
from keelson.kube.client import ApiError
from keelson.kube.resources import Kind
from tests.cases.invalid_platforms import example


class FakeApi:
    """Stores applied objects in the cache the reconciler reads, like a watch would."""

    def __init__(self, cache: DictCache, fail_kind: str | None = None) -> None:
        self.cache = cache
        self.fail_kind = fail_kind
        self.calls: list[tuple[str, str, str]] = []
        self.status: dict[str, Any] | None = None
        self.version = 1  # the platform's resourceVersion on the server
        self.preconditions: list[str] = []
        self.written = 0

    def _store(self, kind: str) -> dict[tuple[str, str], Any]:
        return self.cache.stores.setdefault(kind, {})  # type: ignore[return-value]

    async def apply(self, obj: dict[str, Any], *, field_manager: str = "keelson-operator") -> dict[str, Any]:
        if field_manager != "keelson-operator":
            self.calls.append((f"apply as {field_manager}", obj["kind"], obj["metadata"]["name"]))
            live = self._store(obj["kind"])[(obj["metadata"]["namespace"], obj["metadata"]["name"])]
            live["spec"] = {**live["spec"], **obj["spec"]}
            return dict(live)
        self.calls.append(("apply", obj["kind"], obj["metadata"]["name"]))
        if obj["kind"] == self.fail_kind:
            raise ApiError(422, "Invalid", f"{obj['kind']} is invalid")
        self.written += 1  # every write makes a new resourceVersion, as on the server
        meta = {**obj["metadata"], "uid": f"uid-{obj['metadata']['name']}", "resourceVersion": str(1000 + self.written)}
        live = copy.deepcopy({**obj, "metadata": meta})  # the server stores its own copy
        if obj["kind"] == "Deployment":
            live["spec"] = {**obj["spec"], "replicas": 3}
            live["status"] = {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}
        self._store(obj["kind"])[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = live
        return live

    async def delete(self, kind: Kind, namespace: str, name: str, *, uid: str | None = None) -> None:
        self.calls.append(("delete", kind.kind, name))
        self._store(kind.kind).pop((namespace, name), None)

    async def replace_status(
        self, kind: Kind, namespace: str, name: str, status: dict[str, Any], *, resource_version: str
    ) -> str:
        self.calls.append(("status", kind.kind, name))
        self.preconditions.append(resource_version)
        if resource_version != str(self.version):
            raise ApiError(409, "Conflict", "the object has been modified")
        self.status = status
        self.version += 1
        return str(self.version)

    async def patch_merge(self, kind: Kind, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("patch", kind.kind, name))
        return {}

    async def create(self, kind: Kind, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", kind.kind, obj["reason"]))
        return obj


def _platform() -> dict[str, Any]:
    doc = example()
    doc["metadata"].update(namespace="ns", uid="p-uid", generation=1, resourceVersion="1")
    return doc


def _reconciler(api: FakeApi, cache: DictCache) -> Reconciler:
    return Reconciler(api, cache, reference_image="img:1", now=lambda: "2026-01-01T00:00:00Z")  # type: ignore[arg-type]


async def test_converges_then_writes_nothing() -> None:
    cache = DictCache()
    api = FakeApi(cache)
    rec = _reconciler(api, cache)
    platform = _platform()
    first = await rec.reconcile(platform)
    # Every child, each autoscaled Deployment started at its HPA's minimum, then the status.
    assert first.ready and first.writes == 37 + 5 + 1
    assert [c for c in api.calls if c[0] == "apply as keelson-handover"] == [
        ("apply as keelson-handover", "Deployment", s)
        for s in ("gateway", "users", "orders", "payments", "notifications")
    ]
    assert ("create", "Event", "Ready") in api.calls
    platform["status"] = api.status
    api.calls.clear()
    second = await rec.reconcile(platform)
    assert second.ready and second.writes == 0 and api.calls == []


async def test_drift_and_removal_are_repaired() -> None:
    cache = DictCache()
    api = FakeApi(cache)
    rec = _reconciler(api, cache)
    platform = _platform()
    await rec.reconcile(platform)
    platform["status"] = api.status
    await rec.reconcile(platform)  # woken by the events of its own writes: they are in the cache
    hijacked = cache.stores["Service"][("ns", "orders")]
    hijacked["spec"]["selector"] = {"hijacked": "yes"}  # type: ignore[index]
    hijacked["metadata"]["resourceVersion"] = "1"  # type: ignore[index]  # someone else's write
    del cache.stores["ConfigMap"][("ns", "users-config")]  # type: ignore[attr-defined]
    api.calls.clear()
    await rec.reconcile(platform)
    assert sorted(api.calls) == [("apply", "ConfigMap", "users-config"), ("apply", "Service", "orders")]


async def test_removed_service_is_pruned() -> None:
    cache = DictCache()
    api = FakeApi(cache)
    rec = _reconciler(api, cache)
    platform = _platform()
    await rec.reconcile(platform)
    platform["status"] = api.status
    platform["spec"]["services"] = [s for s in platform["spec"]["services"] if s["name"] != "notifications"]
    platform["spec"]["services"][0]["calls"] = ["users", "orders"]
    api.calls.clear()
    await rec.reconcile(platform)
    deleted = sorted(c[1] for c in api.calls if c[0] == "delete")
    assert deleted == sorted(
        [
            "ServiceAccount",
            "ConfigMap",
            "Service",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "NetworkPolicy",
        ]
    )


async def test_api_errors_are_reported_and_retried_not_raised() -> None:
    cache = DictCache()
    api = FakeApi(cache, fail_kind="PodDisruptionBudget")
    outcome = await _reconciler(api, cache).reconcile(_platform())
    assert outcome.retry and not outcome.ready
    ready = next(c for c in api.status["conditions"] if c["type"] == "Ready")  # type: ignore[index]
    assert (ready["status"], ready["reason"]) == ("False", "ApplyFailed")
    assert "PodDisruptionBudget" in ready["message"]


async def test_paused_platform_is_left_alone() -> None:
    cache = DictCache()
    api = FakeApi(cache)
    platform = _platform()
    platform["metadata"]["annotations"] = {"keelson.dev/reconcile": "paused"}
    await _reconciler(api, cache).reconcile(platform)
    assert [c[0] for c in api.calls if c[0] != "create"] == ["status"]
    paused = next(c for c in api.status["conditions"] if c["type"] == "Paused")  # type: ignore[index]
    assert paused["status"] == "True"


async def test_objects_of_another_owner_are_not_taken_over() -> None:
    cache = DictCache(
        {
            "Deployment": {
                ("ns", "orders"): {
                    "kind": "Deployment",
                    "metadata": {
                        "name": "orders",
                        "namespace": "ns",
                        "ownerReferences": [{"uid": "someone-else", "controller": True}],
                    },
                }
            }
        }
    )
    api = FakeApi(cache)
    await _reconciler(api, cache).reconcile(_platform())
    assert ("apply", "Deployment", "orders") not in api.calls
    workloads = next(c for c in api.status["conditions"] if c["type"] == "WorkloadsReady")  # type: ignore[index]
    assert workloads["reason"] == "NameConflict"


async def test_no_finalizer_without_a_delete_policy() -> None:
    cache = DictCache()
    api = FakeApi(cache)
    await _reconciler(api, cache).reconcile(_platform())
    assert not any(c[0] == "patch" for c in api.calls)
    assert FINALIZER == "keelson.dev/cleanup"


async def test_a_stale_cache_does_not_repeat_our_own_status_write() -> None:
    cache = DictCache()
    api = FakeApi(cache)
    rec = _reconciler(api, cache)
    platform = _platform()
    await rec.reconcile(platform)
    await rec.reconcile(platform)  # the watch has not delivered our status write yet
    assert platform.get("status") is None
    api.calls.clear()
    await rec.reconcile(platform)
    assert api.calls == []  # neither the same status nor a second Ready Event


async def test_the_status_is_replaced_whole_over_the_version_it_was_computed_from() -> None:
    cache = DictCache()
    api = FakeApi(cache)
    platform = _platform()
    for svc in platform["spec"]["services"]:
        svc.pop("publishes", None)
        svc.pop("subscribes", None)
    del platform["spec"]["dailyUsers"]
    platform["status"] = {"topics": [{"name": "ecommerce.order.created"}], "sizing": {"dailyUsers": 1}}
    await _reconciler(api, cache).reconcile(platform)
    assert api.preconditions == ["1"]
    assert api.status is not None and "topics" not in api.status and "sizing" not in api.status


async def test_a_status_conflict_is_left_to_the_newer_versions_pass() -> None:
    cache = DictCache()
    api = FakeApi(cache)
    api.version = 2  # someone wrote the platform after the watch cache's version 1
    outcome = await _reconciler(api, cache).reconcile(_platform())
    assert ("status", "MicroservicePlatform", "shop") in api.calls
    assert not outcome.retry and outcome.errors == []
    assert not any(c[0] == "create" for c in api.calls)  # no Event for a status that was not written


async def test_a_lagging_cache_writes_over_our_own_last_version() -> None:
    cache = DictCache()
    api = FakeApi(cache)
    rec = _reconciler(api, cache)
    platform = _platform()
    await rec.reconcile(platform)  # version 1 -> 2
    first = api.status
    cache.stores["Deployment"][("ns", "orders")]["status"]["readyReplicas"] = 1  # type: ignore[index]
    await rec.reconcile(platform)  # the cache still shows version 1: a new status, written over 2 -> 3
    assert api.preconditions == ["1", "2"] and api.status != first
    # The cache catches up with our first write only: it is still behind our second.
    await rec.reconcile({**platform, "status": first, "metadata": {**platform["metadata"], "resourceVersion": "2"}})
    assert api.preconditions == ["1", "2"]


async def test_a_paused_platform_is_written_once_then_never() -> None:
    cache = DictCache()
    api = FakeApi(cache)
    rec = _reconciler(api, cache)
    platform = _platform()
    await rec.reconcile(platform)
    platform["status"] = api.status
    platform["metadata"].update(annotations={"keelson.dev/reconcile": "paused"}, resourceVersion="2")
    api.calls.clear()
    await rec.reconcile(platform)
    assert [c[0] for c in api.calls] == ["status"]  # the transition to Paused
    platform["status"] = api.status
    platform["metadata"]["resourceVersion"] = "3"
    api.calls.clear()
    # Others delete and edit children; the platform's generation moves on too.
    del cache.stores["Deployment"][("ns", "orders")]  # type: ignore[attr-defined]
    cache.stores["Service"][("ns", "users")]["spec"]["selector"] = {"x": "y"}  # type: ignore[index]
    platform["metadata"]["generation"] = 2
    outcome = await rec.reconcile(platform)
    assert api.calls == [] and outcome.writes == 0


async def test_the_hand_over_lands_before_the_apply_without_replicas() -> None:
    cache = DictCache()
    api = FakeApi(cache)
    rec = _reconciler(api, cache)
    platform = _platform()
    users = next(s for s in platform["spec"]["services"] if s["name"] == "users")
    users.update(replicas=5, autoscaling={"enabled": False})
    await rec.reconcile(platform)
    platform["status"] = api.status
    users["autoscaling"] = {"enabled": True}
    api.calls.clear()
    await rec.reconcile(platform)
    users_calls = [c for c in api.calls if c[2] == "users" and c[1] == "Deployment"]
    assert users_calls == [("apply as keelson-handover", "Deployment", "users"), ("apply", "Deployment", "users")]


class TerminatingApi(FakeApi):
    """The namespace is being deleted: the API server refuses every new object."""

    async def apply(self, obj: dict[str, Any], *, field_manager: str = "keelson-operator") -> dict[str, Any]:
        self.calls.append(("apply", obj["kind"], obj["metadata"]["name"]))
        raise ApiError(
            403,
            "Forbidden",
            f'{obj["kind"].lower()}s "{obj["metadata"]["name"]}" is forbidden: unable to create new content in '
            "namespace ns because it is being terminated",
        )


async def test_a_terminating_namespace_is_not_retried_nor_written_again() -> None:
    cache = DictCache()
    api = TerminatingApi(cache)
    rec = _reconciler(api, cache)
    outcome = await rec.reconcile(_platform())
    assert outcome.errors and not outcome.retry
    api.calls.clear()
    again = await rec.reconcile(_platform())
    assert api.calls == [] and again.writes == 0


class LaggingApi(FakeApi):
    """A watch that has not delivered our writes yet: applies reach the server, not the cache."""

    async def apply(self, obj: dict[str, Any], *, field_manager: str = "keelson-operator") -> dict[str, Any]:
        if field_manager != "keelson-operator":  # the replicas hand-over of a new Deployment
            self.calls.append((f"apply as {field_manager}", obj["kind"], obj["metadata"]["name"]))
            return obj
        made = await super().apply(obj, field_manager=field_manager)
        self._store(obj["kind"]).pop((obj["metadata"]["namespace"], obj["metadata"]["name"]), None)
        return made


async def test_a_pass_before_the_watch_shows_our_writes_writes_nothing_again() -> None:
    cache = DictCache()
    api = LaggingApi(cache)
    rec = _reconciler(api, cache)
    platform = _platform()
    first = await rec.reconcile(platform)
    applied = [c for c in api.calls if c[0] == "apply"]
    assert applied and first.requeue_after is None  # its writes' own watch events bring the next pass
    api.calls.clear()
    second = await rec.reconcile(platform)
    assert [c for c in api.calls if c[0] == "apply"] == []
    # It skipped writes it expects to see: it comes back when those expectations lapse.
    assert second.requeue_after is not None and 0 < second.requeue_after <= 10


async def test_an_unchanged_platform_is_rendered_once(monkeypatch: Any) -> None:
    from keelson.controller import reconciler as module

    renders: list[int] = []
    real = module.render_platform

    def counted(ctx: Any) -> list[dict[str, Any]]:
        renders.append(1)
        return real(ctx)

    monkeypatch.setattr(module, "render_platform", counted)
    cache = DictCache()
    api = FakeApi(cache)
    rec = _reconciler(api, cache)
    platform = _platform()
    for _ in range(3):
        await rec.reconcile(platform)
        platform["status"] = api.status
    assert len(renders) == 1
    # Any input changed: the spec, or the platform's identity (a new object of the same name).
    service = platform["spec"]["services"][0]
    service["resources"] = {"requests": {"cpu": "123m"}}
    api.calls.clear()
    await rec.reconcile(platform)
    assert len(renders) == 2
    assert ("apply", "Deployment", service["name"]) in api.calls  # the new rendering was applied
    platform["metadata"]["uid"] = "p-uid-2"
    await rec.reconcile(platform)
    assert len(renders) == 3
