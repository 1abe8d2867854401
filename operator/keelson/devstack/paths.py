"""Where everything of one stack lives under its state directory, and where the state dir is."""

import os
from dataclasses import dataclass
from pathlib import Path


def default_state_dir() -> Path:
    """``$KEELSON_STATE_DIR``, else ``${XDG_STATE_HOME:-~/.local/state}/keelson/default``."""
    explicit = os.environ.get("KEELSON_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "keelson" / "default"


def repo_root() -> Path:
    """The checkout this package runs from: the nearest ancestor holding pyproject.toml."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    raise RuntimeError("keelson is not running from a source checkout (no pyproject.toml above it)")


@dataclass(frozen=True)
class StackPaths:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def audit_policy(self) -> Path:
        return self.root / "audit-policy.yaml"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit.log"

    @property
    def kwok_workdir(self) -> Path:
        # kwok also loads <workdir>/kwok.yaml; pointing it here keeps ~/.kwok out of the stack.
        return self.root / "kwok"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        return self.root / "operator.kubeconfig"

    def component_kubeconfig(self, component: str) -> Path:
        return self.root / "kubeconfigs" / f"{component}.kubeconfig"

    @property
    def apiserver_cert_dir(self) -> Path:
        # kube-apiserver writes generated certs to /var/run/kubernetes unless told otherwise.
        return self.root / "apiserver-certs"

    @property
    def kafka(self) -> Path:
        return self.root / "kafka"

    @property
    def kafka_data(self) -> Path:
        # Kafka's "log dirs": the partitions and the KRaft metadata log.
        return self.kafka / "data"

    @property
    def kafka_config(self) -> Path:
        return self.kafka / "server.properties"

    @property
    def kafka_log4j(self) -> Path:
        return self.kafka / "log4j2.properties"

    @property
    def kafka_tools_log4j(self) -> Path:
        return self.kafka / "tools-log4j2.properties"

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def postgres_password(self) -> Path:
        return self.postgres / "admin-password"
