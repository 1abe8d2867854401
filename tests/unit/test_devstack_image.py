"""scripts/image's pure parts: the private container configuration, the stand-in base's recipe,
the build command and the layer report."""

from __future__ import annotations

import tomllib
from pathlib import Path

from keelson.devstack import image
from keelson.devstack.versions import BASE_IMAGE_VERSION

ROOT = Path(__file__).resolve().parents[2]


def test_storage_and_engine_config_stay_under_the_private_root(tmp_path: Path) -> None:
    storage = tomllib.loads(image.storage_conf(tmp_path))["storage"]
    assert storage["driver"] == "overlay"
    assert Path(storage["graphroot"]).parent == tmp_path and Path(storage["runroot"]).parent == tmp_path
    conf = tomllib.loads(image.containers_conf(tmp_path, 20000))
    assert conf["engine"]["runtime"] == "runc"  # crun cannot set rlimits here
    assert conf["engine"]["cgroup_manager"] == "cgroupfs"
    assert Path(conf["engine"]["tmp_dir"]).parent == tmp_path
    assert Path(conf["network"]["network_config_dir"]).parent == tmp_path
    assert conf["containers"]["default_ulimits"] == ["nofile=20000:20000", "nproc=4096:4096"]


def test_base_recipe_is_minimal_debian_python_with_the_machine_cas(tmp_path: Path) -> None:
    ca = tmp_path / "proxy.crt"
    argv = image.mmdebstrap_argv(tmp_path / "rootfs.tar", [ca])
    assert argv[0] == "mmdebstrap" and argv[-2:] == ["bookworm", str(tmp_path / "rootfs.tar")]
    assert "--variant=minbase" in argv
    assert "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr" in argv  # no usrmerge, hence no Perl
    hooks = [a.removeprefix("--customize-hook=") for a in argv if a.startswith("--customize-hook=")]
    assert str(ca) in hooks[0] and "update-ca-certificates" in hooks[1]
    assert any("venv --without-pip /usr/local" in hook for hook in hooks)
    assert not any("--customize-hook=cp" in a for a in image.mmdebstrap_argv(tmp_path / "r.tar", []))


def test_build_passes_the_stand_in_base_and_never_pulls() -> None:
    argv = image.build_argv(ROOT, "localhost/keelson:x")
    assert argv[:2] == ["buildah", "bud"]
    assert {"--layers", "--pull=never", "--network=host"} <= set(argv)
    assert f"PYTHON_IMAGE=localhost/keelson-python-base:{BASE_IMAGE_VERSION}" in argv
    assert argv[-1] == str(ROOT)


def test_the_dockerfile_takes_its_base_as_an_argument_and_leaves_the_dev_stack_out() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.count("FROM ${PYTHON_IMAGE}") == 3 and "ARG PYTHON_IMAGE=" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "operator/keelson/devstack" in ignored


def test_layers_are_reported_oldest_first_without_empty_steps() -> None:
    history = [
        {"size": 115_000_000, "CreatedBy": "COPY dir:abc in /opt/keelson"},
        {"size": 0, "CreatedBy": "USER 10001:10001"},
        {"size": 121_000_000, "CreatedBy": "ADD file:def in /"},
    ]
    assert image.layers(history) == [
        image.Layer(121_000_000, "ADD file:def in /"),
        image.Layer(115_000_000, "COPY dir:abc in /opt/keelson"),
    ]
    assert image.megabytes(236_512_345) == "236.5 MB"
