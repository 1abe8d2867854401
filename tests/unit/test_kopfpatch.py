"""The watch of a kind whose CRD was deleted ends quietly instead of ending the operator."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kopf._cogs.clients import errors, watching

from keelson.controller import kopfpatch


async def test_a_404_ends_the_stream_without_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    async def gone(*_: Any, **__: Any) -> AsyncIterator[str]:
        yield "event"
        raise errors.APINotFoundError({"message": "404 page not found"}, status=404, headers={})

    monkeypatch.setattr(kopfpatch, "_original", gone)
    monkeypatch.setattr(kopfpatch, "GONE_BACKOFF_SECONDS", 0)
    seen = [e async for e in kopfpatch.tolerant_continuous_watch(resource="httproutes")]
    assert seen == ["event"]


def test_kopf_still_looks_the_stream_up_where_the_patch_puts_it() -> None:
    # If a kopf upgrade binds continuous_watch differently, the patch would silently do nothing.
    kopfpatch.install()
    assert watching.continuous_watch is kopfpatch.tolerant_continuous_watch
    assert "continuous_watch" in watching.infinite_watch.__code__.co_names
