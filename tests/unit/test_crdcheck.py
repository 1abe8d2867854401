import asyncio
from typing import Any

from keelson.api.crd import SCHEMA_DIGEST_ANNOTATION, custom_resource_definition, schema_digest
from keelson.controller.crdcheck import CRD_CURRENT, MISMATCH_REASON, CrdCheck, compare, expected_digest


def _crd(digest: str | None) -> dict[str, Any]:
    return {"metadata": {"name": "x", "annotations": {SCHEMA_DIGEST_ANNOTATION: digest} if digest else {}}}


def test_the_generated_crd_carries_the_digest_of_its_spec() -> None:
    crd = custom_resource_definition()
    assert crd["metadata"]["annotations"][SCHEMA_DIGEST_ANNOTATION] == schema_digest(crd["spec"])
    assert expected_digest().startswith("sha256:")
    # Any change to the schema changes the digest; key order does not.
    changed = {**crd["spec"], "scope": "Cluster"}
    assert schema_digest(changed) != schema_digest(crd["spec"])
    assert schema_digest(dict(reversed(list(crd["spec"].items())))) == schema_digest(crd["spec"])


def test_compare() -> None:
    assert compare(_crd("sha256:a"), "sha256:a") is None
    stale = compare(_crd("sha256:b"), "sha256:a")
    assert stale is not None and (stale.type, stale.status, stale.reason) == (CRD_CURRENT, "False", MISMATCH_REASON)
    assert "sha256:a" in stale.message and "sha256:b" in stale.message
    unstamped = compare(_crd(None), "sha256:a")
    assert unstamped is not None and "older Keelson" in unstamped.message
    missing = compare(None, "sha256:a")
    assert missing is not None and "no CRD is installed" in missing.message


class _Reader:
    def __init__(self, *answers: dict[str, Any] | Exception) -> None:
        self.answers = list(answers)

    async def get_crd(self, name: str) -> dict[str, Any] | None:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_a_failed_read_keeps_the_last_outcome() -> None:
    check = CrdCheck(_Reader(_crd("sha256:old"), RuntimeError("apiserver down"), _crd("sha256:a")), "sha256:a")
    assert asyncio.run(check.run()) is not None
    assert asyncio.run(check.run()) is not None  # unknown: still the stale verdict
    assert asyncio.run(check.run()) is None and check.condition is None


async def test_a_stale_crd_is_reported_on_the_platform_outside_ready() -> None:
    from keelson.controller.cache import DictCache
    from keelson.controller.reconciler import Reconciler
    from tests.unit.test_reconciler import FakeApi, _platform

    cache = DictCache()
    api = FakeApi(cache)
    stale = compare(_crd("sha256:b"), "sha256:a")
    notices = [stale] if stale else []
    rec = Reconciler(api, cache, reference_image="img:1", notices=lambda: notices)  # type: ignore[arg-type]
    platform = _platform()
    outcome = await rec.reconcile(platform)
    assert outcome.ready  # outside Ready: the platform still converges
    conditions = {c["type"]: c for c in api.status["conditions"]}  # type: ignore[index]
    assert conditions[CRD_CURRENT]["status"] == "False" and conditions[CRD_CURRENT]["reason"] == MISMATCH_REASON
    # The CRD upgraded: the condition goes with the next status (a replace drops it).
    platform["status"] = api.status
    notices.clear()
    await rec.reconcile(platform)
    assert CRD_CURRENT not in {c["type"] for c in api.status["conditions"]}  # type: ignore[index]
