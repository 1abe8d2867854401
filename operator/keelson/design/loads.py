"""Daily users as people write them: `10k`, `250k`, `1M`, `1.5M`, `10M` or a plain number."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

_SUFFIXES = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000}
# The API's own bounds of spec.dailyUsers (a unit test keeps them equal), so that a load the CLI
# accepts is one the CRD accepts.
MIN_DAILY_USERS = 1
MAX_DAILY_USERS = 10_000_000_000


def parse_daily_users(text: str) -> int:
    """The number of daily users `text` stands for; ValueError with the reason otherwise."""
    cleaned = text.strip().replace("_", "").replace(",", "")
    suffix = cleaned[-1:].lower() if cleaned[-1:].isalpha() else ""
    number = cleaned[: len(cleaned) - len(suffix)]
    if suffix not in _SUFFIXES or not number:
        raise ValueError(f"{text!r} is not a number of users: write e.g. 10k, 250k, 1M, 10M or 50000")
    try:
        value = Decimal(number) * _SUFFIXES[suffix]
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number of users: write e.g. 10k, 250k, 1M, 10M or 50000") from None
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number of users")
    users = int(value)
    if not MIN_DAILY_USERS <= users <= MAX_DAILY_USERS:
        raise ValueError(f"{text!r}: daily users must be between {MIN_DAILY_USERS} and {MAX_DAILY_USERS:,}")
    return users
