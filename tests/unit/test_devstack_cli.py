"""`keelson dev` argument parsing and the commands that need no running stack."""

import json
import subprocess
from pathlib import Path

import pytest

from keelson.devstack import cli, stackfile


def test_shell_quote_round_trips_through_sh() -> None:
    value = "it's a $HOME `x`"
    out = subprocess.run(
        ["sh", "-c", f"printf %s {cli.shell_quote(value)}"], capture_output=True, text=True, check=True
    )
    assert out.stdout == value


def test_env_prints_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stackfile.save(tmp_path, {"ports": {"kube-apiserver": 12345}})
    assert cli.main(["dev", "env", "--state-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"export KUBECONFIG='{tmp_path.resolve() / 'admin.kubeconfig'}'" in lines
    assert "export KEELSON_APISERVER_URL='https://127.0.0.1:12345'" in lines


def test_env_without_a_stack_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["dev", "env", "--state-dir", str(tmp_path / "none")]) == 1
    assert "keelson dev up" in capsys.readouterr().err


def test_status_without_a_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["dev", "status", "--state-dir", str(tmp_path / "none")]) == 1
    assert "not created" in capsys.readouterr().out


def test_down_refuses_a_directory_that_is_not_a_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    assert cli.main(["dev", "down", "--state-dir", str(tmp_path)]) == 1
    assert (tmp_path / "precious.txt").exists()
    assert "not a keelson stack" in capsys.readouterr().err


def test_up_flags_parse() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    cli.add_dev_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dev", "up", "--state-dir", "/x", "--no-kafka", "--no-postgres", "--no-operator"])
    assert (args.state_dir, args.no_kafka, args.no_postgres, args.no_operator) == ("/x", True, True, True)


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from keelson.devstack.paths import default_state_dir

    monkeypatch.delenv("KEELSON_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "keelson" / "default"
    monkeypatch.setenv("KEELSON_STATE_DIR", str(tmp_path / "s"))
    assert default_state_dir() == tmp_path / "s"


def test_env_points_at_kafka_and_postgres(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stackfile.save(tmp_path, {"ports": {"kube-apiserver": 1, "kafka": 19092, "postgres": 5433}})
    password = tmp_path / "postgres" / "admin-password"
    password.parent.mkdir()
    password.write_text("s3cret\n")
    assert cli.main(["dev", "env", "--state-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "export KEELSON_KAFKA_BOOTSTRAP='127.0.0.1:19092'" in lines
    assert "export KEELSON_POSTGRES_ADMIN_URI='postgresql://keelson_admin:s3cret@127.0.0.1:5433/postgres'" in lines


def test_env_leaves_out_what_up_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    services = {"kafka": "not started (--no-kafka)", "postgres": "not started (--no-postgres)"}
    stackfile.save(tmp_path, {"ports": {"kube-apiserver": 1, "kafka": 2, "postgres": 3}, "services": services})
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "admin-password").write_text("s3cret\n")
    assert cli.main(["dev", "env", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "KEELSON_KAFKA_BOOTSTRAP" not in out
    assert "s3cret" not in out


def test_status_says_what_up_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    services = {"kafka": "not started (--no-kafka)"}
    stackfile.save(tmp_path, {"ports": {"kube-apiserver": 1, "kafka": 2, "postgres": 3}, "services": services})
    assert cli.main(["dev", "status", "--state-dir", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["kafka"] == "not started (--no-kafka)"
    assert report["postgres"] == "stopped"
    assert report["etcd"] == "stopped"
    assert list(report)[-2:] == ["kafka", "postgres"]


def test_stack_helpers_for_tests(tmp_path: Path) -> None:
    from keelson.devstack.stack import STOP_SIGNALS, LocalStack, StackError

    stackfile.save(tmp_path, {"ports": {"kafka": 19092, "postgres": 5433}})
    stack = LocalStack(tmp_path)
    assert stack.kafka_bootstrap == "127.0.0.1:19092"
    with pytest.raises(StackError, match="no PostgreSQL"):
        _ = stack.postgres_admin_uri
    # Stopping what is not running is fine, for the data services too.
    assert stack.stop_component("kafka") is False
    assert stack.stop_component("postgres") is False
    # PostgreSQL's fast shutdown: its SIGTERM would wait for every client to disconnect.
    import signal

    assert STOP_SIGNALS["postgres"] == signal.SIGINT


def test_stop_with_a_platform_stops_only_its_services(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stackfile.save(tmp_path, {"ports": {"kube-apiserver": 12345}})
    stopped_stack: list[bool] = []
    monkeypatch.setattr(cli.LocalStack, "stop", lambda self, progress: stopped_stack.append(True))
    assert cli.main(["dev", "stop", "shop", "-n", "shop", "--state-dir", str(tmp_path)]) == 0
    assert "no local services of shop/shop were running" in capsys.readouterr().err
    assert stopped_stack == []
    assert cli.main(["dev", "stop", "--state-dir", str(tmp_path)]) == 0
    assert stopped_stack == [True]
