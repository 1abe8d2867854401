"""The one-time link tokens of the users service (`users/account_tokens.py`): their shape, what is
stored of them, and when a stored one may still be used. No I/O."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from keelson_services.contracts.users import VerifyEmailRequest
from keelson_services.services.users.account_tokens import PREFIXES, StoredToken, new_token
from keelson_services.services.users.refresh_tokens import token_hash

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("purpose", ["verify_email", "reset_password"])
def test_a_token_is_random_prefixed_by_its_purpose_and_fits_the_contract(purpose: str) -> None:
    tokens = {new_token(purpose) for _ in range(100)}  # type: ignore[arg-type]
    assert len(tokens) == 100
    for token in tokens:
        assert token.startswith(PREFIXES[purpose])  # type: ignore[index]
        assert len(token) == 4 + 43  # 32 random bytes, URL-safe base64
        VerifyEmailRequest(token=token)  # what the public API accepts


def test_only_a_hash_is_stored_and_it_is_sha256_of_the_token() -> None:
    token = new_token("verify_email")
    stored = token_hash(token)
    assert stored == hashlib.sha256(token.encode()).digest() and token.encode() not in stored


@pytest.mark.parametrize(
    ("expires_in", "used", "usable"),
    [
        (timedelta(minutes=30), False, True),
        (timedelta(microseconds=1), False, True),
        (timedelta(0), False, False),  # expiry is exclusive: at `expires_at` it is over
        (-timedelta(seconds=1), False, False),
        (timedelta(minutes=30), True, False),  # used, or superseded by a newer link
    ],
)
def test_a_stored_token_is_usable_until_it_expires_and_once(expires_in: timedelta, used: bool, usable: bool) -> None:
    stored = StoredToken(uuid.uuid4(), NOW + expires_in, NOW - timedelta(minutes=1) if used else None)
    assert stored.usable(NOW) is usable
