"""Kubeconfig rendering."""

import base64
import stat
from pathlib import Path

import pytest
import yaml

from keelson.devstack.kubeconfig import render_kubeconfig, write_private


def test_client_certificate_kubeconfig() -> None:
    config = yaml.safe_load(
        render_kubeconfig(
            server="https://127.0.0.1:6443",
            ca_pem=b"CA",
            user="admin",
            client_cert_pem=b"CERT",
            client_key_pem=b"KEY",
        )
    )
    assert config["current-context"] == "keelson-local"
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == b"CA"
    user = config["users"][0]
    assert user["name"] == "admin"
    assert base64.b64decode(user["user"]["client-certificate-data"]) == b"CERT"
    assert base64.b64decode(user["user"]["client-key-data"]) == b"KEY"
    assert config["contexts"][0]["context"] == {"cluster": "keelson-local", "user": "admin"}


def test_token_kubeconfig_with_namespace() -> None:
    config = yaml.safe_load(
        render_kubeconfig(server="https://h:1", ca_pem=b"CA", user="op", token="t0k", namespace="keelson-system")
    )
    assert config["users"][0]["user"] == {"token": "t0k"}
    assert config["contexts"][0]["context"]["namespace"] == "keelson-system"


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"token": "t", "client_cert_pem": b"C", "client_key_pem": b"K"},
        {"client_cert_pem": b"C"},
    ],
)
def test_exactly_one_credential(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        render_kubeconfig(server="https://h:1", ca_pem=b"CA", user="u", **kwargs)  # type: ignore[arg-type]


def test_write_private_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.kubeconfig"
    write_private(path, "secret")
    assert path.read_text() == "secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
