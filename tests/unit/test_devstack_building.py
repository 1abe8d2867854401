"""The Go wrapper modules and the binary cache, without running Go."""

from pathlib import Path

import pytest

from keelson.devstack import building, cache

UPSTREAM_GO_MOD = """\
// This is a generated file. Do not edit directly.

module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tgithub.com/blang/semver/v4 v4.0.0
\tk8s.io/api v0.0.0
\tk8s.io/apiserver v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/apiserver => ./staging/src/k8s.io/apiserver
\tk8s.io/cri-client => ./staging/src/k8s.io/cri-client
\tgithub.com/example/fork => github.com/example/fork v1.2.3
)

replace k8s.io/kms => ./staging/src/k8s.io/kms
"""


def test_staging_modules_come_from_the_local_replace_lines_only() -> None:
    assert building.staging_modules(UPSTREAM_GO_MOD) == [
        "k8s.io/api",
        "k8s.io/apiserver",
        "k8s.io/cri-client",
        "k8s.io/kms",
    ]


def test_wrapper_go_mod_pins_every_staging_module_to_its_published_tag() -> None:
    text = building.kubernetes_wrapper_go_mod(UPSTREAM_GO_MOD, "v1.36.3")
    assert text.startswith("module keelson.dev/localstack/kubernetes\n")
    assert "\ngo 1.26.0\n" in text
    assert "\nrequire k8s.io/kubernetes v1.36.3\n" in text
    for module in ("k8s.io/api", "k8s.io/apiserver", "k8s.io/cri-client", "k8s.io/kms"):
        assert f"\t{module} => {module} v0.36.3\n" in text
    assert "github.com/example/fork" not in text
    assert "./staging" not in text


def test_wrapper_go_mod_refuses_a_go_mod_without_staging_modules() -> None:
    with pytest.raises(ValueError, match="staging"):
        building.kubernetes_wrapper_go_mod("module x\n\ngo 1.26\n", "v1.36.3")


def test_staging_version() -> None:
    assert building.staging_version("v1.36.3") == "v0.36.3"
    assert building.staging_version("v1.37.0-rc.1") == "v0.37.0-rc.1"
    with pytest.raises(ValueError):
        building.staging_version("v2.0.0")


def test_tools_go_is_build_tagged_and_imports_each_command() -> None:
    text = building.tools_go(("k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-scheduler"))
    assert text.startswith("//go:build tools\n")
    assert '\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n' in text
    assert '\t_ "k8s.io/kubernetes/cmd/kube-scheduler"\n' in text


def test_kubernetes_ldflags_stamp_the_version() -> None:
    flags = building.kubernetes_ldflags("v1.36.3")
    assert flags.startswith("-s -w ")
    assert "-X k8s.io/component-base/version.gitVersion=v1.36.3" in flags
    assert "-X k8s.io/component-base/version.gitMajor=1" in flags
    assert "-X k8s.io/component-base/version.gitMinor=36" in flags


def test_etcd_wrapper() -> None:
    text = building.etcd_wrapper_go_mod("v3.6.16", "1.26.0")
    assert "\ngo 1.26.0\n" in text
    assert "\nrequire go.etcd.io/etcd/server/v3 v3.6.16\n" in text
    assert "etcdmain.Main(os.Args)" in building.ETCD_MAIN_GO


def test_helm_ldflags_take_the_kubernetes_minor_from_client_go() -> None:
    flags = building.helm_ldflags("v3.22.0", "require (\n\tk8s.io/client-go v0.35.2\n)\n")
    assert "-X helm.sh/helm/v3/internal/version.version=v3.22.0" in flags
    assert "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=35" in flags


def test_join_yaml_documents() -> None:
    assert building.join_yaml_documents(["a: 1", "b: 2\n"]) == "a: 1\n---\nb: 2\n"


def test_cache_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KEELSON_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "keelson"
    monkeypatch.setenv("KEELSON_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache.bin_dir("etcd", "v3.6.16") == tmp_path / "explicit" / "bin" / "etcd-v3.6.16"


def _fake_component(calls: list[Path], *, fail: bool = False) -> building.Component:
    def build(out: Path, version: str) -> None:
        calls.append(out)
        if fail:
            raise building.BuildError("boom")
        binary = out / "tool"
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
        (out / "data.yaml").write_text("x: 1\n")

    return building.Component("tool", "v1.0.0", ("tool",), build, "no time", files=("data.yaml",))


def test_ensure_component_builds_once_then_hits_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KEELSON_CACHE_DIR", str(tmp_path))
    calls: list[Path] = []
    comp = _fake_component(calls)
    messages: list[str] = []
    first = building.ensure_component(comp, messages.append)
    second = building.ensure_component(comp, messages.append)
    assert first == second == tmp_path / "bin" / "tool-v1.0.0"
    assert (first / "tool").is_file()
    assert len(calls) == 1
    # Built into a temporary directory next to the final one, then renamed.
    assert calls[0].parent == first.parent
    assert calls[0] != first
    assert not calls[0].exists()
    assert any("building tool v1.0.0" in m for m in messages)


def test_a_failed_build_leaves_nothing_that_looks_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KEELSON_CACHE_DIR", str(tmp_path))
    calls: list[Path] = []
    with pytest.raises(building.BuildError):
        building.ensure_component(_fake_component(calls, fail=True), lambda _: None)
    assert not (tmp_path / "bin" / "tool-v1.0.0").exists()
    assert not calls[0].exists()


def test_a_new_data_file_is_made_without_rebuilding_the_binaries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KEELSON_CACHE_DIR", str(tmp_path))
    builds: list[Path] = []
    final = building.ensure_component(_fake_component(builds), lambda _: None)
    made: list[Path] = []

    def make_files(out: Path, version: str) -> None:
        made.append(out)
        (out / "data.yaml").write_text("x: 1\n")
        (out / "data-2.yaml").write_text("y: 2\n")

    # The same binaries, a file name the cache does not have yet (a new key).
    wider = building.Component(
        "tool", "v1.0.0", ("tool",), builds.append, "no time", files=("data.yaml", "data-2.yaml"), make_files=make_files
    )
    messages: list[str] = []
    assert building.ensure_component(wider, messages.append) == final
    assert len(builds) == 1, "the binaries were not built again"
    assert len(made) == 1 and not made[0].exists()
    assert (final / "data-2.yaml").read_text() == "y: 2\n"
    assert (final / "tool").is_file()
    assert any("extracting tool v1.0.0" in m for m in messages)
    building.ensure_component(wider, messages.append)
    assert len(made) == 1, "then it is cached"


def test_kubevela_definitions_are_cached_under_a_key_of_their_names() -> None:
    assert "k8s-objects" in building.KUBEVELA_DEFINITIONS
    assert building.kubevela_definitions_file(building.KUBEVELA_DEFINITIONS) == building.KUBEVELA_DEFS
    assert building.kubevela_definitions_file(("webservice", "scaler", "hpa", "gateway")) != building.KUBEVELA_DEFS
    assert building.KUBEVELA_DEFS in building.KUBEVELA.files
    assert building.KUBEVELA.make_files is building.kubevela_files


def test_kafka_pom_asks_for_the_broker_its_tools_and_a_logging_backend() -> None:
    import xml.etree.ElementTree as ET

    text = building.kafka_pom("4.4.0", "2.24.3")
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.fromstring(text)
    assert root.findtext("m:packaging", namespaces=ns) == "pom"
    deps = {
        (d.findtext("m:groupId", namespaces=ns), d.findtext("m:artifactId", namespaces=ns)): d.findtext(
            "m:version", namespaces=ns
        )
        for d in root.iterfind("m:dependencies/m:dependency", ns)
    }
    assert deps == {
        ("org.apache.kafka", "kafka_2.13"): "4.4.0",
        ("org.apache.kafka", "kafka-tools"): "4.4.0",
        ("org.apache.logging.log4j", "log4j-slf4j-impl"): "2.24.3",
        ("org.apache.logging.log4j", "log4j-core"): "2.24.3",
    }


def test_kafka_is_cached_by_its_marker_jars_and_fetched_with_maven() -> None:
    assert building.KAFKA.tool == "mvn"
    assert building.KAFKA.binaries == ()
    assert "libs/kafka_2.13-4.4.0.jar" in building.kafka_marker_jars("4.4.0", "2.24.3")
    # A log4j bump changes the markers, so the cached directory no longer counts as complete.
    assert "libs/log4j-slf4j-impl-2.99.0.jar" in building.kafka_marker_jars("4.4.0", "2.99.0")
    # Only a stack that runs Kafka fetches it.
    assert building.KAFKA not in building.COMPONENTS
    assert building.component("kafka") is building.KAFKA


def test_kafka_libs_live_in_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KEELSON_CACHE_DIR", str(tmp_path))
    assert building.kafka_libs() == tmp_path / "bin" / f"kafka-{building.KAFKA.version}" / "libs"


def test_a_missing_build_tool_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KEELSON_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    comp = building.Component("jars", "1.0", (), lambda out, version: None, "no time", files=("x.jar",), tool="mvn")
    with pytest.raises(building.BuildError, match="`mvn` is not on PATH"):
        building.ensure_component(comp, lambda _: None)


KUBEVELA_GO_MOD = """module github.com/oam-dev/kubevela

go 1.19

require (
\tk8s.io/api v0.26.3
)

replace (
\tcloud.google.com/go => cloud.google.com/go v0.100.2
\t// a comment
\tgithub.com/docker/docker => github.com/moby/moby v20.10.24+incompatible
)

replace github.com/wercker/stern => github.com/oam-dev/stern v1.13.2
"""


def test_kubevela_wrapper_repeats_the_upstream_replaces() -> None:
    assert building.replace_directives(KUBEVELA_GO_MOD) == [
        "cloud.google.com/go => cloud.google.com/go v0.100.2",
        "github.com/docker/docker => github.com/moby/moby v20.10.24+incompatible",
        "github.com/wercker/stern => github.com/oam-dev/stern v1.13.2",
    ]
    wrapper = building.kubevela_wrapper_go_mod(KUBEVELA_GO_MOD, "v1.9.13")
    assert "go 1.19\n" in wrapper
    assert "require github.com/oam-dev/kubevela v1.9.13\n" in wrapper
    assert "\tgithub.com/docker/docker => github.com/moby/moby v20.10.24+incompatible\n" in wrapper


def test_kubevela_wrapper_refuses_local_replaces() -> None:
    with pytest.raises(ValueError, match="local path"):
        building.kubevela_wrapper_go_mod("module x\n\ngo 1.19\n\nreplace a/b => ./b\n", "v1.9.13")


def test_kubevela_definitions_fill_in_the_namespace() -> None:
    template = 'kind: TraitDefinition\nmetadata:\n  namespace: {{ include "systemDefinitionNamespace" . }}\n'
    assert building.kubevela_definitions([template, template], "vela-system").count("namespace: vela-system") == 2
    with pytest.raises(ValueError, match="template syntax"):
        building.kubevela_definitions(["a: {{ .Values.x }}\n"], "vela-system")
