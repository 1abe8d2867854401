"""Build the stack's binaries from the Go module proxy (and Kafka's jars from Maven Central),
once per version, into the cache.

Every build writes into a fresh temporary directory next to its final place and is renamed
into place only when complete, so a half-finished or interrupted build is never mistaken for
a cached one. A file lock keeps two ``keelson dev up`` from building the same thing at once.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keelson.devstack import cache
from keelson.devstack.versions import (
    ETCD_VERSION,
    HELM_VERSION,
    KAFKA_VERSION,
    KUBERNETES_VERSION,
    KUBEVELA_VERSION,
    KWOK_VERSION,
    LOG4J_VERSION,
    MAVEN_DEPENDENCY_PLUGIN_VERSION,
)

Progress = Callable[[str], None]

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
KUBERNETES_MODULE = "k8s.io/kubernetes"
ETCD_SERVER_MODULE = "go.etcd.io/etcd/server/v3"
KWOK_MODULE = "sigs.k8s.io/kwok"
KWOK_PACKAGE = "sigs.k8s.io/kwok/cmd/kwok"
HELM_MODULE = "helm.sh/helm/v3"
HELM_PACKAGE = "helm.sh/helm/v3/cmd/helm"
KUBEVELA_MODULE = "github.com/oam-dev/kubevela"

# Lines of k8s.io/kubernetes's go.mod that point a staging module at its in-repo copy, either
# inside a ``replace ( ... )`` block or as a one-line ``replace`` directive.
_STAGING_REPLACE = re.compile(r"^\s*(?:replace\s+)?(k8s\.io/[A-Za-z0-9._/-]+)\s+=>\s+\./staging/", re.M)
_GO_DIRECTIVE = re.compile(r"^go\s+(\S+)\s*$", re.M)
_CLIENT_GO_REQUIRE = re.compile(r"^\s*(?:require\s+)?k8s\.io/client-go\s+v0\.(\d+)\.", re.M)

ETCD_MAIN_GO = """\
// Command etcd: the same entry point as etcd's own server/main.go. A wrapper module is needed
// because go.etcd.io/etcd/server/v3's go.mod has replace directives, which `go install` refuses.
package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
\tetcdmain.Main(os.Args)
}
"""


class BuildError(RuntimeError):
    """A Go or Maven build failed; the message ends with the tail of its log."""


# --- pure helpers (unit-tested) ---------------------------------------------------------------


def staging_modules(upstream_go_mod: str) -> list[str]:
    """The k8s.io modules that k8s.io/kubernetes's go.mod replaces with ./staging copies."""
    return sorted(set(_STAGING_REPLACE.findall(upstream_go_mod)))


def go_directive(go_mod: str) -> str:
    """The ``go`` line of a go.mod; the wrapper asks for the same language version."""
    match = _GO_DIRECTIVE.search(go_mod)
    if match is None:
        raise ValueError("go.mod has no go directive")
    return match.group(1)


def staging_version(kubernetes_version: str) -> str:
    """Staging modules are tagged v0.X.Y for Kubernetes v1.X.Y."""
    if not kubernetes_version.startswith("v1."):
        raise ValueError(f"not a Kubernetes 1.x version: {kubernetes_version}")
    return "v0." + kubernetes_version.removeprefix("v1.")


def kubernetes_wrapper_go_mod(upstream_go_mod: str, kubernetes_version: str) -> str:
    """go.mod of a module that can build k8s.io/kubernetes's commands from the proxy.

    ``go install k8s.io/kubernetes/cmd/...@vX`` is refused because its go.mod requires the
    staging modules at v0.0.0 and replaces them with local paths; a main module may override
    both by replacing each staging module with its published v0.X.Y tag.
    """
    modules = staging_modules(upstream_go_mod)
    if not modules:
        raise ValueError("no ./staging replace directives found in k8s.io/kubernetes's go.mod")
    tag = staging_version(kubernetes_version)
    replaces = "".join(f"\t{module} => {module} {tag}\n" for module in modules)
    return (
        "module keelson.dev/localstack/kubernetes\n\n"
        f"go {go_directive(upstream_go_mod)}\n\n"
        f"require {KUBERNETES_MODULE} {kubernetes_version}\n\n"
        f"replace (\n{replaces})\n"
    )


def tools_go(packages: tuple[str, ...]) -> str:
    """A file that only exists to make ``go mod tidy`` keep the packages' dependencies."""
    imports = "".join(f'\t_ "{package}"\n' for package in packages)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports})\n"


def kubernetes_ldflags(kubernetes_version: str) -> str:
    """Stamp the version: without it /version says v0.0.0 and Helm rejects ``kubeVersion``."""
    major, minor = kubernetes_version.removeprefix("v").split(".")[:2]
    stamps = [
        f"k8s.io/component-base/version.gitVersion={kubernetes_version}",
        f"k8s.io/component-base/version.gitMajor={major}",
        f"k8s.io/component-base/version.gitMinor={minor}",
        f"k8s.io/client-go/pkg/version.gitVersion={kubernetes_version}",
    ]
    return " ".join(["-s", "-w", *(f"-X {stamp}" for stamp in stamps)])


def etcd_wrapper_go_mod(etcd_version: str, go_version: str) -> str:
    return f"module keelson.dev/localstack/etcd\n\ngo {go_version}\n\nrequire {ETCD_SERVER_MODULE} {etcd_version}\n"


def helm_ldflags(helm_version: str, helm_go_mod: str) -> str:
    """What helm's Makefile stamps: its version, and the Kubernetes minor it assumes offline."""
    flags = ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version={helm_version}"]
    match = _CLIENT_GO_REQUIRE.search(helm_go_mod)
    if match is not None:
        for package in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
            flags += [f"-X {package}.k8sVersionMajor=1", f"-X {package}.k8sVersionMinor={match.group(1)}"]
    return " ".join(flags)


_REPLACE_BLOCK = re.compile(r"^replace\s*\(\n(.*?)^\)", re.M | re.S)
_REPLACE_LINE = re.compile(r"^\s*replace\s+(\S.*=>.*)$", re.M)


def replace_directives(go_mod: str) -> list[str]:
    """Every ``old => new`` of a go.mod's replace directives, blocks and one-liners alike."""
    lines = [line.strip() for block in _REPLACE_BLOCK.findall(go_mod) for line in block.splitlines()]
    lines += [match.strip() for match in _REPLACE_LINE.findall(go_mod)]
    return [line for line in lines if line and not line.startswith("//")]


def kubevela_wrapper_go_mod(upstream_go_mod: str, kubevela_version: str) -> str:
    """go.mod of a module that builds vela-core from the proxy.

    kubevela's go.mod replaces a few modules (docker → moby, a forked stern, ...), which ``go
    install`` refuses; a main module that requires it and repeats those replaces builds it.
    """
    replaces = replace_directives(upstream_go_mod)
    if any("=> ." in line or "=> /" in line for line in replaces):
        raise ValueError("kubevela's go.mod replaces a module with a local path")
    body = "".join(f"\t{line}\n" for line in replaces)
    return (
        "module keelson.dev/bench/kubevela\n\n"
        f"go {go_directive(upstream_go_mod)}\n\n"
        f"require {KUBEVELA_MODULE} {kubevela_version}\n" + (f"\nreplace (\n{body})\n" if replaces else "")
    )


def kubevela_definitions(templates: list[str], namespace: str) -> str:
    """The chart's definition templates as plain YAML: their one template line is the namespace."""
    rendered = [t.replace('{{ include "systemDefinitionNamespace" . }}', namespace) for t in templates]
    leftover = [t for t in rendered if "{{" in t]
    if leftover:
        raise ValueError(f"unexpected template syntax in a KubeVela definition: {leftover[0][:200]}")
    return join_yaml_documents(rendered)


KAFKA_GROUP = "org.apache.kafka"
KAFKA_ARTIFACT = "kafka_2.13"
LOG4J_GROUP = "org.apache.logging.log4j"


def kafka_pom(kafka_version: str, log4j_version: str) -> str:
    """A throwaway Maven project whose runtime dependencies are everything a broker needs.

    kafka-tools brings the broker's own command-line tools (topics, console producer and
    consumer) for developers and tests; log4j-slf4j-impl and log4j-core are the logging
    backend that Kafka's poms leave to the distribution.
    """
    dependencies = [
        (KAFKA_GROUP, KAFKA_ARTIFACT, kafka_version),
        (KAFKA_GROUP, "kafka-tools", kafka_version),
        (LOG4J_GROUP, "log4j-slf4j-impl", log4j_version),
        (LOG4J_GROUP, "log4j-core", log4j_version),
    ]
    entries = "".join(
        "    <dependency>\n"
        f"      <groupId>{group}</groupId>\n"
        f"      <artifactId>{artifact}</artifactId>\n"
        f"      <version>{version}</version>\n"
        "    </dependency>\n"
        for group, artifact, version in dependencies
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>dev.keelson.localstack</groupId>\n"
        "  <artifactId>kafka-libs</artifactId>\n"
        f"  <version>{kafka_version}</version>\n"
        "  <packaging>pom</packaging>\n"
        f"  <dependencies>\n{entries}  </dependencies>\n"
        "</project>\n"
    )


def kafka_marker_jars(kafka_version: str, log4j_version: str) -> tuple[str, ...]:
    """Jars whose presence says the libs directory is this build's (a log4j bump rebuilds it)."""
    return (
        f"libs/{KAFKA_ARTIFACT}-{kafka_version}.jar",
        f"libs/kafka-tools-{kafka_version}.jar",
        f"libs/log4j-slf4j-impl-{log4j_version}.jar",
    )


# --- running Go and Maven ---------------------------------------------------------------------


def _go_env(**extra: str) -> dict[str, str]:
    # Static binaries: nothing to link against at run time, and no C toolchain needed.
    return {**os.environ, "CGO_ENABLED": "0", **extra}


def _run_logged(argv: list[str], *, what: str, cwd: Path, log: Path, env: dict[str, str]) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        result = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise BuildError(f"{what} failed (exit {result.returncode}); log {log}:\n{tail}")


def _run_go(args: list[str], *, cwd: Path, log: Path, env: dict[str, str] | None = None) -> None:
    _run_logged(["go", *args], what=f"go {args[0]}", cwd=cwd, log=log, env=env or _go_env())


def _download(module: str, version: str, *, cwd: Path, log: Path) -> dict[str, Any]:
    """``go mod download -json module@version``: fetches it into the module cache."""
    result = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=cwd,
        env=_go_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        with log.open("a") as out:
            out.write(result.stdout + result.stderr)
        detail = result.stderr.strip() or result.stdout
        raise BuildError(f"go mod download {module}@{version} failed: {detail}")
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def _download_go_mod(module: str, version: str, *, cwd: Path, log: Path) -> str:
    """The go.mod the proxy serves for module@version."""
    return Path(_download(module, version, cwd=cwd, log=log)["GoMod"]).read_text()


def _download_module_dir(module: str, version: str, *, cwd: Path, log: Path) -> Path:
    """The extracted source of module@version in the module cache."""
    return Path(_download(module, version, cwd=cwd, log=log)["Dir"])


def _fresh_work_dir(component: str, version: str) -> tuple[Path, Path]:
    work = cache.work_dir(component, version)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return work, work / "build.log"


# --- builders: each fills ``out`` with its binaries -------------------------------------------


def build_kubernetes(out: Path, version: str = KUBERNETES_VERSION) -> None:
    work, log = _fresh_work_dir("kubernetes", version)
    upstream = _download_go_mod(KUBERNETES_MODULE, version, cwd=work, log=log)
    (work / "go.mod").write_text(kubernetes_wrapper_go_mod(upstream, version))
    packages = tuple(f"{KUBERNETES_MODULE}/cmd/{command}" for command in KUBERNETES_COMMANDS)
    (work / "tools.go").write_text(tools_go(packages))
    _run_go(["mod", "tidy"], cwd=work, log=log)
    _run_go(
        ["build", "-trimpath", "-ldflags", kubernetes_ldflags(version), "-o", f"{out}/", *packages],
        cwd=work,
        log=log,
    )


def build_etcd(out: Path, version: str = ETCD_VERSION) -> None:
    work, log = _fresh_work_dir("etcd", version)
    upstream = _download_go_mod(ETCD_SERVER_MODULE, version, cwd=work, log=log)
    (work / "go.mod").write_text(etcd_wrapper_go_mod(version, go_directive(upstream)))
    (work / "main.go").write_text(ETCD_MAIN_GO)
    _run_go(["mod", "tidy"], cwd=work, log=log)
    _run_go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), "."], cwd=work, log=log)


# The kwok binary has no built-in behaviour: kwokctl writes these Stage objects into its config
# (node-initialize, heartbeat with leases, and the "fast" pod lifecycle). Taken from the same
# module version as the binary, so they always match it.
KWOK_STAGE_FILES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)
KWOK_STAGES = "kwok-stages.yaml"


def join_yaml_documents(documents: list[str]) -> str:
    return "---\n".join(doc if doc.endswith("\n") else doc + "\n" for doc in documents)


def build_kwok(out: Path, version: str = KWOK_VERSION) -> None:
    # kwok's go.mod has no replace directives, so a plain `go install` works.
    work, log = _fresh_work_dir("kwok", version)
    _run_go(
        ["install", "-trimpath", "-ldflags", "-s -w", f"{KWOK_PACKAGE}@{version}"],
        cwd=work,
        log=log,
        env=_go_env(GOBIN=str(out)),
    )
    source = _download_module_dir(KWOK_MODULE, version, cwd=work, log=log)
    stages = [(source / name).read_text() for name in KWOK_STAGE_FILES]
    (out / KWOK_STAGES).write_text(join_yaml_documents(stages))


def build_helm(out: Path, version: str = HELM_VERSION) -> None:
    work, log = _fresh_work_dir("helm", version)
    helm_go_mod = _download_go_mod(HELM_MODULE, version, cwd=work, log=log)
    _run_go(
        ["install", "-trimpath", "-ldflags", helm_ldflags(version, helm_go_mod), f"{HELM_PACKAGE}@{version}"],
        cwd=work,
        log=log,
        env=_go_env(GOBIN=str(out)),
    )


def build_kafka(out: Path, version: str = KAFKA_VERSION) -> None:
    """Kafka's jars and their runtime dependencies into ``out/libs``: no Kafka build, just Maven."""
    work, log = _fresh_work_dir("kafka", version)
    pom = work / "pom.xml"
    pom.write_text(kafka_pom(version, LOG4J_VERSION))
    plugin = f"org.apache.maven.plugins:maven-dependency-plugin:{MAVEN_DEPENDENCY_PLUGIN_VERSION}"
    _run_logged(
        [
            "mvn", "-q", "-B", "-f", str(pom),
            f"{plugin}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={out / 'libs'}",
        ],
        what="mvn dependency:copy-dependencies", cwd=work, log=log, env=dict(os.environ),
    )  # fmt: skip


# What the benchmark's Applications use: a Deployment and a Service per component (webservice),
# replicas (scaler), and an HPA (hpa) as Keelson renders one; and, for the equal-work Application,
# the very objects Keelson renders, as raw objects (k8s-objects).
KUBEVELA_DEFINITIONS = ("webservice", "scaler", "hpa", "gateway", "k8s-objects")
KUBEVELA_CRDS = "kubevela-crds.yaml"
KUBEVELA_SYSTEM_NAMESPACE = "vela-system"


def kubevela_definitions_file(names: tuple[str, ...]) -> str:
    """The cached definitions file's name, keyed by the definitions it holds: adding one to
    KUBEVELA_DEFINITIONS is a cache miss, which extracts the file again (not the binary)."""
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:10]
    return f"kubevela-definitions-{digest}.yaml"


KUBEVELA_DEFS = kubevela_definitions_file(KUBEVELA_DEFINITIONS)


def kubevela_files(out: Path, version: str = KUBEVELA_VERSION) -> None:
    """vela-core's CRDs and the benchmark's definitions, from the module's chart, into ``out``."""
    work, log = _fresh_work_dir("kubevela-files", version)
    source = _download_module_dir(KUBEVELA_MODULE, version, cwd=work, log=log)
    crds = sorted((source / "charts/vela-core/crds").glob("*.yaml"))
    (out / KUBEVELA_CRDS).write_text(join_yaml_documents([crd.read_text() for crd in crds]))
    templates = source / "charts/vela-core/templates/defwithtemplate"
    definitions = [(templates / f"{name}.yaml").read_text() for name in KUBEVELA_DEFINITIONS]
    (out / KUBEVELA_DEFS).write_text(kubevela_definitions(definitions, KUBEVELA_SYSTEM_NAMESPACE))


def build_kubevela(out: Path, version: str = KUBEVELA_VERSION) -> None:
    """vela-core from github.com/oam-dev/kubevela, with its CRDs and the definitions the benchmark uses."""
    work, log = _fresh_work_dir("kubevela", version)
    source = _download_module_dir(KUBEVELA_MODULE, version, cwd=work, log=log)
    (work / "go.mod").write_text(kubevela_wrapper_go_mod((source / "go.mod").read_text(), version))
    (work / "main.go").write_text((source / "cmd/core/main.go").read_text())
    _run_go(["mod", "tidy"], cwd=work, log=log)
    _run_go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "vela-core"), "."], cwd=work, log=log)
    kubevela_files(out, version)


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    binaries: tuple[str, ...]
    build: Callable[[Path, str], None]
    # Shown before a cold build so nobody thinks it hangs.
    expected_duration: str
    # Data files the build leaves next to the binaries.
    files: tuple[str, ...] = ()
    # What the build runs; checked up front so a cache miss fails with a clear message.
    tool: str = "go"
    # Makes ``files`` alone into the directory it is given, when the binaries are cached but a
    # file is missing (a new file name): no rebuild of the binaries for a data file.
    make_files: Callable[[Path, str], None] | None = None


COMPONENTS: tuple[Component, ...] = (
    Component("kubernetes", KUBERNETES_VERSION, KUBERNETES_COMMANDS, build_kubernetes, "5-25 min on 2 cores"),
    Component("etcd", ETCD_VERSION, ("etcd",), build_etcd, "1-3 min"),
    Component("kwok", KWOK_VERSION, ("kwok",), build_kwok, "2-5 min", files=(KWOK_STAGES,)),
    Component("helm", HELM_VERSION, ("helm",), build_helm, "2-5 min"),
)
# Not in COMPONENTS: only a stack that runs Kafka needs its jars (see ensure_kafka).
KAFKA = Component(
    "kafka",
    KAFKA_VERSION,
    (),
    build_kafka,
    "under a minute with a warm ~/.m2, a few minutes cold",
    files=kafka_marker_jars(KAFKA_VERSION, LOG4J_VERSION),
    tool="mvn",
)

# Not in COMPONENTS either: the peer of bench/converge.py, never part of the product or the stack.
KUBEVELA = Component(
    "kubevela",
    KUBEVELA_VERSION,
    ("vela-core",),
    build_kubevela,
    "5-10 min on 2 cores",
    files=(KUBEVELA_CRDS, KUBEVELA_DEFS),
    make_files=kubevela_files,
)


def component(name: str) -> Component:
    for candidate in (*COMPONENTS, KAFKA, KUBEVELA):
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def _binaries_present(directory: Path, comp: Component) -> bool:
    return all(os.access(directory / binary, os.X_OK) for binary in comp.binaries)


def _complete(directory: Path, comp: Component) -> bool:
    return _binaries_present(directory, comp) and all((directory / name).is_file() for name in comp.files)


def _make_files(final: Path, comp: Component, make: Callable[[Path, str], None], progress: Progress) -> None:
    """Only the data files, into a temporary directory, then each renamed into place."""
    progress(f"extracting {comp.name} {comp.version}'s files ({', '.join(comp.files)}) into {final}")
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f"{final.name}.files-"))
    try:
        make(staging, comp.version)
        missing = [name for name in comp.files if not (staging / name).is_file()]
        if missing:
            raise BuildError(f"{comp.name} produced no {', '.join(missing)}")
        for name in comp.files:
            (staging / name).chmod(0o644)
            os.replace(staging / name, final / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _build_lock(final: Path) -> Iterator[None]:
    lock_path = final.parent / f".{final.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_component(comp: Component, progress: Progress) -> Path:
    """The directory holding ``comp``'s binaries, building it first on a cache miss."""
    final = cache.bin_dir(comp.name, comp.version)
    if _complete(final, comp):
        return final
    with _build_lock(final):
        # Someone else may have finished the build while we waited for the lock.
        if _complete(final, comp):
            return final
        if shutil.which(comp.tool) is None:
            raise BuildError(f"{comp.name} {comp.version} is not cached in {final} and `{comp.tool}` is not on PATH")
        if comp.make_files is not None and comp.binaries and _binaries_present(final, comp):
            _make_files(final, comp, comp.make_files, progress)
            return final
        progress(
            f"building {comp.name} {comp.version} ({', '.join(comp.binaries or ('jars',))}): first time only, "
            f"{comp.expected_duration}; log {cache.work_dir(comp.name, comp.version) / 'build.log'}"
        )
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f"{final.name}.building-"))
        try:
            comp.build(staging, comp.version)
            missing = [name for name in (*comp.binaries, *comp.files) if not (staging / name).is_file()]
            if missing:
                raise BuildError(f"{comp.name} build produced no {', '.join(missing)}")
            if final.exists():  # a stale, incomplete directory from older tooling
                shutil.rmtree(final)
            staging.chmod(0o755)  # mkdtemp's 0700 would hide the binaries from other users
            staging.rename(final)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        progress(f"built {comp.name} {comp.version} into {final}")
    return final


def _kubectl() -> Path:
    # kubectl is a prerequisite of the machine, not something we build.
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise BuildError("kubectl is not on PATH")
    return Path(kubectl)


def binary_paths() -> dict[str, Path]:
    """Where every binary is (or would be) cached, without building anything."""
    paths: dict[str, Path] = {}
    for comp in COMPONENTS:
        directory = cache.bin_dir(comp.name, comp.version)
        paths.update({name: directory / name for name in (*comp.binaries, *comp.files)})
    paths["kubectl"] = _kubectl()
    return paths


def ensure_binaries(progress: Progress) -> dict[str, Path]:
    """Every binary the stack runs, by name (``kube-apiserver``, ``etcd``, ``helm``, ``kubectl``...).

    Builds whatever is not cached yet; also holds the kwok Stage file, as ``kwok-stages.yaml``.
    """
    for comp in COMPONENTS:
        ensure_component(comp, progress)
    return binary_paths()


def kafka_libs() -> Path:
    """Where Kafka's jars are (or would be) cached, without building anything."""
    return cache.bin_dir(KAFKA.name, KAFKA.version) / "libs"


def ensure_kafka(progress: Progress) -> Path:
    """Kafka's libs directory (a classpath of ``<dir>/*``), fetching the jars on a cache miss."""
    ensure_component(KAFKA, progress)
    return kafka_libs()
