"""Where the PostgreSQL server's directories go, whom it runs as, its password: no server needed."""

import os
import pwd
import stat
from pathlib import Path

import pytest

from keelson.devstack import pgserver

ME = pgserver.Account("me", os.geteuid(), os.getegid())
# Owns nothing under tmp_path, and is in none of its groups.
STRANGER = pgserver.Account("stranger", 54321, 54321)


def _stat(mode: int, uid: int, gid: int) -> os.stat_result:
    return os.stat_result((stat.S_IFDIR | mode, 0, 0, 2, uid, gid, 0, 0, 0, 0))


@pytest.mark.parametrize(
    ("mode", "uid", "gid", "groups", "allowed"),
    [
        (0o700, 100, 100, {100}, True),  # owner
        (0o600, 100, 100, {100}, False),  # owner without x
        (0o710, 0, 100, {100}, True),  # group
        (0o701, 0, 0, {100}, True),  # others
        (0o700, 0, 0, {100}, False),  # /root, mkdtemp
        (0o770, 0, 0, {100}, False),  # group bits for a group it is not in
    ],
)
def test_may_enter(mode: int, uid: int, gid: int, groups: set[int], allowed: bool) -> None:
    assert pgserver.may_enter(_stat(mode, uid, gid), 100, groups) is allowed


def test_root_may_enter_anything() -> None:
    assert pgserver.may_enter(_stat(0o000, 1, 1), 0, {0})


def test_first_unsearchable_names_the_blocking_directory(tmp_path: Path) -> None:
    blocked = tmp_path / "a"
    (blocked / "b").mkdir(parents=True)
    try:
        blocked.chmod(0o600)
        expected = None if os.geteuid() == 0 else blocked
        assert pgserver.first_unsearchable(blocked / "b", ME) == expected
    finally:
        blocked.chmod(0o700)
    assert pgserver.first_unsearchable(blocked / "b", ME) is None


@pytest.fixture
def relocation_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    root = tmp_path / "var-tmp"
    root.mkdir()
    monkeypatch.setattr(pgserver, "RELOCATION_ROOT", root)
    return root


def test_a_reachable_state_dir_keeps_the_server_inside(tmp_path: Path, relocation_root: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    dirs = pgserver.plan_dirs(state / "postgres", state, ME, 5433)
    assert dirs == pgserver.ServerDirs(state / "postgres" / "data", state / "postgres" / "run")
    pgserver.ensure_dirs(state / "postgres", dirs, ME)
    assert stat.S_IMODE((state / "postgres").stat().st_mode) == 0o711
    assert stat.S_IMODE(dirs.data.stat().st_mode) == 0o700
    assert not (state / "postgres" / "data").is_symlink()
    # Decided once: asking again finds the same place.
    assert pgserver.plan_dirs(state / "postgres", state, ME, 5433) == dirs
    assert pgserver.remove_relocated(state / "postgres") is None


def test_an_unreachable_state_dir_relocates_and_links(tmp_path: Path, relocation_root: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    # tmp_path's ancestors include a 0700 directory (pytest's own), which a stranger cannot enter.
    assert pgserver.first_unsearchable(state, STRANGER) is not None
    dirs = pgserver.plan_dirs(state / "postgres", state, STRANGER, 5433)
    home = pgserver.relocation_home(state)
    assert home.parent.parent == relocation_root
    assert dirs == pgserver.ServerDirs(home / "data", home / "run")

    # Created as ourselves (chown to a stranger needs root); the layout is the same.
    pgserver.ensure_dirs(state / "postgres", dirs, ME)
    link = state / "postgres" / "data"
    assert link.is_symlink() and link.resolve() == home / "data"
    assert stat.S_IMODE(home.parent.stat().st_mode) == 0o711
    # Later starts follow the link, whoever asks.
    assert pgserver.plan_dirs(state / "postgres", state, ME, 5433) == dirs

    assert pgserver.remove_relocated(state / "postgres") == home
    assert not home.exists()


def test_a_socket_path_too_long_for_the_kernel_relocates(tmp_path: Path, relocation_root: Path) -> None:
    state = tmp_path / ("d" * 120)
    state.mkdir()
    dirs = pgserver.plan_dirs(state / "postgres", state, ME, 5433)
    assert dirs.data.parent == pgserver.relocation_home(state)


def test_remove_relocated_never_follows_a_link_elsewhere(tmp_path: Path, relocation_root: Path) -> None:
    precious = tmp_path / "precious" / "data"
    precious.mkdir(parents=True)
    base = tmp_path / "state" / "postgres"
    base.mkdir(parents=True)
    (base / "data").symlink_to(precious)
    assert pgserver.remove_relocated(base) is None
    assert precious.exists()


def test_relocation_homes_differ_per_state_dir() -> None:
    assert pgserver.relocation_home(Path("/a")) != pgserver.relocation_home(Path("/b"))
    assert pgserver.relocation_home(Path("/a")) == pgserver.relocation_home(Path("/a"))


def test_the_password_is_generated_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "postgres" / "admin-password"
    first = pgserver.ensure_password(path)
    assert len(first) >= 32
    assert first.replace("-", "").replace("_", "").isalnum()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert pgserver.ensure_password(path) == first


def test_the_account_follows_an_existing_data_directory(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    assert pgserver.data_owner(tmp_path) == os.geteuid()
    assert pgserver.ensure_account(pgserver.data_owner(tmp_path)).uid == os.geteuid()
    assert pgserver.data_owner(tmp_path / "none") is None


def test_the_server_never_runs_as_root() -> None:
    if os.geteuid() != 0:
        assert pgserver.ensure_account().is_me
        return
    names = {entry.pw_name for entry in pwd.getpwall()}
    if not names & {pgserver.SYSTEM_USER, pgserver.DISTRIBUTION_USER}:
        pytest.skip("would create a system user; `keelson dev up` does that, not a unit test")
    # As root, an existing unprivileged account (ours, else the distribution's) is used.
    account = pgserver.ensure_account()
    assert account.uid != 0
    assert account.name in (pgserver.SYSTEM_USER, pgserver.DISTRIBUTION_USER)


def test_server_version_parses_debian_builds(tmp_path: Path) -> None:
    fake = tmp_path / "postgres"
    fake.write_text("#!/bin/sh\necho 'postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)'\n")
    fake.chmod(0o755)
    assert pgserver.server_version(tmp_path) == "15.18"
