"""Database, role and Secret names: valid for PostgreSQL and distinct whatever the Kubernetes names."""

from __future__ import annotations

import itertools
import re

from keelson.databases.naming import MAX_IDENTIFIER, identifier, secret_name

LONG_PLATFORM = "p" * 200 + "-" + "q" * 52  # a 253-character name
LONG_SERVICE = "s" + "-x" * 31  # a 63-character DNS-1035 label


def _valid(name: str) -> bool:
    return len(name.encode()) <= MAX_IDENTIFIER and re.fullmatch(r"[a-z_][a-z0-9_]*", name) is not None


def test_readable_with_dashes_turned_into_underscores() -> None:
    name = identifier("shop", "shop", "order-history")
    assert name.startswith("shop_order_history_") and _valid(name)


def test_maximum_lengths_are_cut_but_keep_the_hash() -> None:
    name = identifier("n" * 63, LONG_PLATFORM, LONG_SERVICE)
    assert len(name) == MAX_IDENTIFIER and _valid(name)
    other = identifier("n" * 63, LONG_PLATFORM, LONG_SERVICE[:-1] + "y")
    assert other != name and other[:54] == name[:54]  # same readable prefix, different hash


def test_distinct_across_namespaces_and_ambiguous_dashes() -> None:
    cases = [
        ("shop", "shop", "orders"),
        ("shop-2", "shop", "orders"),  # same platform name in another namespace
        ("shop", "a-b", "c"),
        ("shop", "a", "b-c"),  # reads a_b_c as well
        ("shop", "a.b", "c"),  # dots are allowed in platform names
        ("shop", "a", "b--c"),
        ("shop", "a", "b-c-"[:-1]),
    ]
    names = [identifier(*c) for c in cases]
    assert len(set(names)) == len(set(cases))
    assert all(_valid(n) for n in names)


def test_many_long_names_stay_distinct() -> None:
    services = [f"{LONG_SERVICE[:-3]}{i:03d}" for i in range(300)]
    names = {identifier("ns", LONG_PLATFORM, s) for s in services}
    assert len(names) == 300


def test_reserved_pg_prefix_is_avoided() -> None:
    name = identifier("ns", "pg-tools", "orders")
    assert not name.startswith("pg_") and name.startswith("k_pg_tools_orders_")


def test_identifiers_never_start_with_a_digit_or_contain_odd_characters() -> None:
    for platform, service in itertools.product(["1shop", "shop.v2", "x" * 253], ["a", "b-1"]):
        name = identifier("ns", platform, service)
        assert re.fullmatch(r"[a-z0-9_]+", name) and len(name) <= MAX_IDENTIFIER
    # identifiers are always double-quoted in SQL, so a leading digit is valid as well


def test_secret_name_is_the_documented_one_and_fits() -> None:
    assert secret_name("shop", "orders") == "shop-orders-db"
    long = secret_name(LONG_PLATFORM, LONG_SERVICE)
    assert len(long) <= 253 and long.endswith("-db")
    assert long != secret_name(LONG_PLATFORM, LONG_SERVICE[:-1] + "y")
