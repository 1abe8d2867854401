"""Sealing with a key-encryption key: round trip, bound to its context, KEK change, clear errors."""

from __future__ import annotations

import base64

import pytest

from keelson_services.auth.sealing import Sealer, SealError
from keelson_services.settings import SettingsError

OLD, NEW = base64.urlsafe_b64encode(b"o" * 32).decode(), base64.urlsafe_b64encode(b"n" * 32).decode()


def test_a_sealed_value_opens_only_for_its_context_and_hides_the_plaintext() -> None:
    sealer = Sealer.from_env({"KEELSON_KEY_ENCRYPTION_KEY": NEW})
    sealed = sealer.seal(b"private key bytes", context="kid-1")
    assert b"private key bytes" not in sealed and sealed != sealer.seal(b"private key bytes", context="kid-1")
    assert sealer.open(sealed, kek_id=sealer.kek_id, context="kid-1") == b"private key bytes"
    with pytest.raises(SealError, match="does not open"):
        sealer.open(sealed, kek_id=sealer.kek_id, context="kid-2")
    assert NEW not in repr(sealer)


def test_the_previous_kek_still_opens_what_it_sealed() -> None:
    old = Sealer.from_env({"KEELSON_KEY_ENCRYPTION_KEY": OLD})
    sealed = old.seal(b"k", context="c")
    new = Sealer.from_env({"KEELSON_KEY_ENCRYPTION_KEY": NEW, "KEELSON_PREVIOUS_KEY_ENCRYPTION_KEY": OLD})
    assert new.open(sealed, kek_id=old.kek_id, context="c") == b"k"
    with pytest.raises(SealError, match="not configured"):
        Sealer.from_env({"KEELSON_KEY_ENCRYPTION_KEY": NEW}).open(sealed, kek_id=old.kek_id, context="c")


@pytest.mark.parametrize(
    ("value", "message"),
    [(None, "is not set"), ("c2hvcnQ=", "must be 32 bytes"), ("@@@@", "must be 32 bytes")],
)
def test_a_missing_or_malformed_kek_is_a_clear_error(value: str | None, message: str) -> None:
    env = {} if value is None else {"KEELSON_KEY_ENCRYPTION_KEY": value}
    with pytest.raises(SettingsError, match=message):
        Sealer.from_env(env)
