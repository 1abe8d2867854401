"""``LocalStack``: one local Kubernetes stack living in one state directory.

``up`` builds what is missing, starts what is not running and waits for each part to be
healthy before the next one needs it; running it again is cheap and changes nothing that
is already fine. Processes are detached, so the stack outlives the command that started it.
"""

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import ssl
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from keelson.devstack import (
    building,
    cluster,
    controlplane,
    kafkabroker,
    kafkaprobe,
    pgconfig,
    pgserver,
    ports,
    processes,
    stackfile,
)
from keelson.devstack.certs import KAFKA_BROKER_CN, Pki, ensure_client_cert, ensure_kafka_cert, ensure_pki
from keelson.devstack.kubeconfig import render_kubeconfig, write_private
from keelson.devstack.localize import localize
from keelson.devstack.paths import StackPaths, repo_root
from keelson.devstack.ports import LOOPBACK
from keelson.devstack.probes import Health, client_tls, http_health, unverified_tls, wait_until
from keelson.devstack.versions import ETCD_VERSION, HELM_VERSION, KAFKA_VERSION, KUBERNETES_VERSION, KWOK_VERSION
from keelson.kafkaclient import PLAINTEXT, SCRAM_SHA_512, KafkaSecurity

Progress = Callable[[str], None]

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
OPERATOR = "operator"
# A second operator process, for the leader election tests: the same code and ServiceAccount,
# its own ports, log and identity. Never started by `up`.
STANDBY_OPERATOR = "operator-2"
OPERATORS = (OPERATOR, STANDBY_OPERATOR)
KAFKA = "kafka"
POSTGRES = "postgres"
# What the platforms the operator manages use; each can be left out (`up --no-kafka`...).
DATA_SERVICES = (KAFKA, POSTGRES)
COMPONENTS = (*CONTROL_PLANE, *DATA_SERVICES, *OPERATORS)
# PostgreSQL's SIGTERM is a "smart" shutdown that waits for every client (the operator's pool)
# to disconnect; SIGINT is its fast shutdown. Everything else stops cleanly on SIGTERM.
STOP_SIGNALS = {POSTGRES: signal.SIGINT}
# The broker's super user, and the Secrets (in `default` and in each `dev apply` namespace) that
# platforms on this stack name in spec.kafka.
KAFKA_ADMIN_USER = "keelson-admin"
KAFKA_ADMIN_SECRET = "kafka-admin"
KAFKA_CA_SECRET = "kafka-ca"


def stop_signal(name: str) -> signal.Signals:
    return STOP_SIGNALS.get(name, signal.SIGTERM)


# Cold first start of the apiserver bootstraps RBAC, priority levels, etc.: give it time.
STARTUP_TIMEOUTS = {
    "etcd": 30.0,
    "kube-apiserver": 120.0,
    "kube-controller-manager": 60.0,
    "kube-scheduler": 60.0,
    "kwok": 30.0,
    KAFKA: 60.0,
    POSTGRES: 60.0,
    OPERATOR: 90.0,
    STANDBY_OPERATOR: 90.0,
}
NODES_READY_TIMEOUT = 60.0
# Variables that would make a client (kopf's in-cluster login, an HTTP library) talk to
# something other than this stack.
_LEAKY_ENV = ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBECONFIG")


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Daemon:
    argv: list[str]
    health: Callable[[], Health]
    env: dict[str, str] | None = None
    cwd: Path | None = None
    # Runs before each start (e.g. to issue a fresh token).
    prepare: Callable[[], None] | None = None
    # Another OS account to run as (PostgreSQL's, when we are root).
    user: int | None = None
    group: int | None = None


class StackError(RuntimeError):
    pass


def default_chart() -> Path:
    """``$KEELSON_DEV_CHART`` (to try another chart), else the checkout's charts/keelson."""
    override = os.environ.get("KEELSON_DEV_CHART")
    return Path(override).expanduser() if override else repo_root() / "charts" / "keelson"


class LocalStack:
    def __init__(self, state_dir: Path, *, chart: Path | None = None) -> None:
        self.state_dir = state_dir.expanduser().resolve()
        self._chart = chart
        self.paths = StackPaths(self.state_dir)
        self.admin_kubeconfig = self.paths.admin_kubeconfig
        self.operator_kubeconfig = self.paths.operator_kubeconfig
        self.audit_log = self.paths.audit_log
        self._binaries: dict[str, Path] | None = None

    # --- facts about the stack -----------------------------------------------------------------

    @property
    def ports(self) -> dict[str, int]:
        chosen = stackfile.load(self.state_dir).get("ports")
        if not chosen:
            raise StackError(f"no stack in {self.state_dir}: run `keelson dev up` first")
        return {str(name): int(port) for name, port in chosen.items()}

    @property
    def apiserver_url(self) -> str:
        return f"https://{LOOPBACK}:{self.ports['kube-apiserver']}"

    @property
    def pki(self) -> Pki:
        return Pki(self.paths.pki)

    @property
    def kafka_bootstrap(self) -> str:
        """``127.0.0.1:<port>``: the broker's bootstrap address."""
        return f"{LOOPBACK}:{self.ports[KAFKA]}"

    @property
    def kafka_plaintext(self) -> bool:
        """Whether the last `up` ran the broker in the old plaintext mode (`--kafka-plaintext`)."""
        return bool(stackfile.load(self.state_dir).get("kafka_plaintext", False))

    @property
    def kafka_admin_password(self) -> str:
        """The broker's super user's password, made on the first `up`: a secret, never log it."""
        path = self.paths.kafka / "admin-password"
        if not path.is_file():
            self.paths.kafka.mkdir(parents=True, exist_ok=True)
            write_private(path, kafkabroker.new_password())
        return path.read_text().strip()

    def _broker_security(self) -> kafkabroker.BrokerSecurity | None:
        if self.kafka_plaintext:
            return None
        return kafkabroker.BrokerSecurity(
            admin_user=KAFKA_ADMIN_USER,
            admin_password=self.kafka_admin_password,
            keystore=self.pki.kafka_keystore,
            truststore=self.pki.ca.cert,
            broker_principal=f"CN={KAFKA_BROKER_CN}",
        )

    @property
    def kafka_security(self) -> KafkaSecurity:
        """How a client reaches the stack's broker, as its super user (TLS on the stack's CA and
        SCRAM-SHA-512), or plaintext with `--kafka-plaintext`."""
        if self.kafka_plaintext:
            return PLAINTEXT
        return KafkaSecurity(
            tls=True,
            mechanism=SCRAM_SHA_512,
            username=KAFKA_ADMIN_USER,
            password=self.kafka_admin_password,
            ca_file=str(self.pki.ca.cert),
        )

    def kafka_settings(self) -> dict[str, Any]:
        """`spec.kafka` fields that point a platform at this broker with its Secrets (see
        `kafka_secrets_manifest`): merge them into a platform's `kafka:`."""
        settings: dict[str, Any] = {"bootstrapServers": self.kafka_bootstrap}
        if not self.kafka_plaintext:
            settings["tls"] = {"caSecretRef": {"name": KAFKA_CA_SECRET}}
            settings["authentication"] = {"type": "scram-sha-512", "adminSecretRef": {"name": KAFKA_ADMIN_SECRET}}
        return settings

    def kafka_secrets_manifest(self, namespace: str) -> str:
        """Secrets kafka-admin (username, password) and kafka-ca (ca.crt) in a namespace: what
        `kafka_settings` refers to. Empty in plaintext mode."""
        if self.kafka_plaintext:
            return ""
        values = {
            KAFKA_ADMIN_SECRET: {"username": KAFKA_ADMIN_USER, "password": self.kafka_admin_password},
            KAFKA_CA_SECRET: {"ca.crt": self.pki.ca.cert.read_text()},
        }
        docs = [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {"app.kubernetes.io/managed-by": "keelson-dev"},
                },
                "type": "Opaque",
                "data": {k: base64.b64encode(v.encode()).decode("ascii") for k, v in data.items()},
            }
            for name, data in values.items()
        ]
        return yaml.safe_dump_all(docs, sort_keys=False)

    def kafka_client_config(self) -> list[str]:
        """`--command-config <file>` for Kafka's own tools: the client properties of the super user
        (a private file in the state dir), or nothing in plaintext mode."""
        if self.kafka_plaintext:
            return []
        security = self.kafka_security
        path = self.paths.kafka / "client.properties"
        write_private(
            path,
            kafkabroker.render_properties(
                {
                    "security.protocol": security.protocol,
                    "sasl.mechanism": kafkabroker.SCRAM,
                    "sasl.jaas.config": kafkabroker.client_jaas(KAFKA_ADMIN_USER, self.kafka_admin_password),
                    "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": str(self.pki.ca.cert),
                },
                "Written by keelson's LocalStack.kafka_client_config: the stack's Kafka super user.",
            ),
        )
        return ["--command-config", str(path)]

    def apply_kafka_secrets(self, namespace: str) -> None:
        manifest = self.kafka_secrets_manifest(namespace)
        if manifest:
            # Through stdin, never argv: the manifest holds the password.
            self.kubectl().apply(manifest)

    @property
    def postgres_admin_uri(self) -> str:
        """``postgresql://keelson_admin:<password>@127.0.0.1:<port>/postgres``: a secret, never log it."""
        port = self.ports[POSTGRES]
        try:
            password = self.paths.postgres_password.read_text().strip()
        except FileNotFoundError:
            raise StackError(f"no PostgreSQL in {self.state_dir}: run `keelson dev up` without --no-postgres") from None
        return pgconfig.admin_uri(password, port)

    def env(self) -> dict[str, str]:
        """Variables that point clients (kubectl, tests, ``keelson dev``) at this stack."""
        variables = {
            "KUBECONFIG": str(self.admin_kubeconfig),
            "KEELSON_STATE_DIR": str(self.state_dir),
            "KEELSON_APISERVER_URL": self.apiserver_url,
            "KEELSON_OPERATOR_KUBECONFIG": str(self.operator_kubeconfig),
            "KEELSON_AUDIT_LOG": str(self.audit_log),
        }
        # Only what the last `up` ran (a stack from an older keelson may lack the ports too).
        offered = set(self.ports) - set(stackfile.load(self.state_dir).get("services", {}))
        if KAFKA in offered:
            variables["KEELSON_KAFKA_BOOTSTRAP"] = self.kafka_bootstrap
            # The CA file and the super user's credentials, in the variables every Kafka client of
            # this repository reads (keelson.kafkaclient).
            variables.update(self.kafka_security.env())
        if POSTGRES in offered and self.paths.postgres_password.is_file():
            variables["KEELSON_POSTGRES_ADMIN_URI"] = self.postgres_admin_uri
        # Set by `keelson dev run` while a platform's services run locally.
        gateway = stackfile.load(self.state_dir).get("run", {}).get("gateway_url")
        if gateway:
            variables["KEELSON_GATEWAY_URL"] = str(gateway)
        return variables

    def kafka_tool_argv(self, main_class: str, *args: str) -> list[str]:
        """A command line for one of Kafka's own tools against this stack's jars, e.g.
        ``kafka_tool_argv("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", ...)``."""
        libs = building.kafka_libs()
        if not libs.is_dir():
            raise StackError(f"Kafka's jars are not in {libs}: run `keelson dev up` (without --no-kafka)")
        if not self.paths.kafka_tools_log4j.is_file():
            self.paths.kafka.mkdir(parents=True, exist_ok=True)
            self.paths.kafka_tools_log4j.write_text(kafkabroker.TOOLS_LOG4J)
        return kafkabroker.tool_argv(
            kafkabroker.java_binary(), libs, self.paths.kafka_tools_log4j, main_class, list(args)
        )

    def kubectl(self) -> cluster.Kubectl:
        return cluster.Kubectl(self._binary("kubectl"), self.admin_kubeconfig)

    # --- lifecycle ------------------------------------------------------------------------------

    def up(
        self,
        *,
        kafka: bool,
        postgres: bool,
        operator: bool,
        kafka_plaintext: bool = False,
        progress: Progress = _quiet,
    ) -> None:
        """Bring the stack to the requested shape; already-healthy parts are left alone."""
        started = time.monotonic()
        with self._lock():
            progress(f"state dir {self.state_dir}")
            ports.ensure_ports(self.state_dir)
            stackfile.update(self.state_dir, kafka_plaintext=kafka_plaintext)
            self._binaries = building.ensure_binaries(progress)
            if kafka:
                building.ensure_kafka(progress)
            pki = ensure_pki(self.paths.pki)
            if kafka and not kafka_plaintext:
                ensure_kafka_cert(pki)
            self._write_config_files()

            # Independent of the control plane: started first and waited for last, so their
            # start-up overlaps the apiserver's.
            wanted = [name for name, on in ((KAFKA, kafka), (POSTGRES, postgres)) if on]
            services = {name: self._launch(name) for name in wanted}

            self._ensure_running("etcd", progress)
            self._ensure_running("kube-apiserver", progress)
            # Independent of each other: start all three, then wait for each.
            rest = ("kube-controller-manager", "kube-scheduler", "kwok")
            launched = {name: self._launch(name) for name in rest}
            for name in rest:
                self._await_healthy(name, launched[name], progress)

            self._apply_nodes(progress)
            self._install_chart(progress)
            self._await_nodes_ready(progress)

            for name in wanted:
                self._await_healthy(name, services[name], progress)
            if postgres:
                self._apply_admin_secret(progress)
            if kafka and not kafka_plaintext:
                self.apply_kafka_secrets(pgconfig.ADMIN_SECRET_NAMESPACE)
                progress(
                    f"kafka: SASL_SSL (SCRAM-SHA-512) with an authorizer; Secrets {pgconfig.ADMIN_SECRET_NAMESPACE}/"
                    f"{KAFKA_ADMIN_SECRET} (username, password) and {KAFKA_CA_SECRET} (ca.crt) applied"
                )
            skipped = self._skip_unwanted(kafka=kafka, postgres=postgres, operator=operator, progress=progress)
            if operator:
                self.start_operator(progress)
            versions = {
                "kubernetes": KUBERNETES_VERSION,
                "etcd": ETCD_VERSION,
                "kwok": KWOK_VERSION,
                "helm": HELM_VERSION,
            }
            if kafka:
                versions[KAFKA] = KAFKA_VERSION
            if postgres:
                versions[POSTGRES] = pgserver.server_version(pgserver.bin_dir())
            stackfile.update(self.state_dir, services=skipped, versions=versions)
        progress(f"stack ready in {time.monotonic() - started:.1f}s (KUBECONFIG={self.admin_kubeconfig})")

    def stop(self, progress: Progress = _quiet) -> None:
        """Stop every process but keep the state: the next ``up`` is a warm start."""
        with self._lock():
            self._stop_all(progress)

    def down(self, progress: Progress = _quiet) -> None:
        """Stop everything this stack started and delete its state directory."""
        if not self.state_dir.exists():
            progress(f"no stack in {self.state_dir}")
            return
        if not stackfile.stack_file(self.state_dir).exists() and any(self.state_dir.iterdir()):
            # Never rm -rf a directory we did not create (a mistyped --state-dir).
            raise StackError(f"{self.state_dir} has no {stackfile.STACK_FILE}: not a keelson stack, not removing it")
        with self._lock():
            self._stop_all(progress)
            relocated = pgserver.remove_relocated(self.paths.postgres)
            if relocated is not None:
                progress(f"removed {relocated}")
            ports.release_ports(self.state_dir)
            shutil.rmtree(self.state_dir)
        progress(f"removed {self.state_dir}")

    def status(self) -> dict[str, str]:
        """Each component's health in a word or a short phrase."""
        if not stackfile.stack_file(self.state_dir).exists():
            return {"stack": f"not created ({self.state_dir})"}
        data = stackfile.load(self.state_dir)
        skipped: dict[str, str] = data.get("services", {})
        report: dict[str, str] = {}
        for name in (*CONTROL_PLANE, OPERATOR, "nodes", *DATA_SERVICES):
            if name == "nodes":
                report[name] = self._nodes_status() if report["kube-apiserver"] == "healthy" else "unknown"
            elif name in skipped and not processes.alive(self.state_dir, name):
                report[name] = skipped[name]
            else:
                report[name] = self._component_status(name)
        return report

    # --- single components ----------------------------------------------------------------------

    def start_component(self, name: str, progress: Progress = _quiet) -> None:
        """Start one component if it is not running, and wait until it is healthy."""
        self._ensure_running(name, progress)

    def stop_component(self, name: str, sig: signal.Signals | None = None, timeout: float = 15.0) -> bool:
        """Stop one component (its clean-stop signal by default; SIGKILL after ``timeout``).

        True if it was running. Kafka's and PostgreSQL's data stay: ``start_component`` brings
        them back as they were.
        """
        self._check_name(name)
        return processes.stop(self.state_dir, name, sig=sig or stop_signal(name), timeout=timeout)

    def restart_apiserver(self, progress: Progress = _quiet) -> None:
        self.stop_component("kube-apiserver")
        self._ensure_running("kube-apiserver", progress)

    def start_operator(self, progress: Progress = _quiet, *, name: str = OPERATOR) -> None:
        """Run the working tree's operator as the chart's ServiceAccount, with a fresh token.

        ``name`` picks one of OPERATORS: a second process (leader election) has its own ports,
        log, and POD_NAME; the environment (KEELSON_LEADER_ELECTION, ...) is this process's."""
        self._check_operator(name)
        self._ensure_running(name, progress)

    def stop_operator(
        self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0, *, name: str = OPERATOR
    ) -> bool:
        """Stop the operator with ``sig`` (SIGKILL after ``timeout``). True if it was running."""
        self._check_operator(name)
        return processes.stop(self.state_dir, name, sig=sig, timeout=timeout)

    def kill_operator(self, sig: signal.Signals, *, name: str = OPERATOR) -> bool:
        """Send ``sig`` without waiting (SIGKILL: a crash). True if it was running."""
        self._check_operator(name)
        return processes.kill(self.state_dir, name, sig)

    def operator_alive(self, *, name: str = OPERATOR) -> bool:
        return processes.alive(self.state_dir, name)

    def log_path(self, name: str) -> Path:
        return processes.log_path(self.state_dir, name)

    # --- internals ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One `up`/`down`/`stop` at a time per stack."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _binary(self, name: str) -> Path:
        # Never builds: only `up` may start a build that takes minutes.
        if self._binaries is None:
            self._binaries = building.binary_paths()
        return self._binaries[name]

    @staticmethod
    def _check_operator(name: str) -> None:
        if name not in OPERATORS:
            raise StackError(f"unknown operator process {name!r}; known: {', '.join(OPERATORS)}")

    @staticmethod
    def _check_name(name: str) -> None:
        if name not in COMPONENTS:
            raise StackError(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}")

    def _write_config_files(self) -> None:
        """Kubeconfigs and config files, rewritten every `up` so they always match stack.json."""
        pki = self.pki
        self.paths.audit_policy.write_text(controlplane.AUDIT_POLICY)
        write_private(self.admin_kubeconfig, self._cert_kubeconfig(pki, "admin"))
        # Each daemon has its own identity (all system:masters): the audit log tells them apart.
        for component in ("kube-controller-manager", "kube-scheduler", "kwok"):
            user = f"system:{component}" if component.startswith("kube-") else f"keelson:{component}"
            ensure_client_cert(pki, component, user, ("system:masters",))
            write_private(self.paths.component_kubeconfig(component), self._cert_kubeconfig(pki, component))

    def _cert_kubeconfig(self, pki: Pki, name: str) -> str:
        pair = pki.client(name)
        return render_kubeconfig(
            server=self.apiserver_url,
            ca_pem=pki.ca.cert.read_bytes(),
            user=name,
            client_cert_pem=pair.cert.read_bytes(),
            client_key_pem=pair.key.read_bytes(),
        )

    def _daemon_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
        no_proxy = ",".join(filter(None, [env.get("NO_PROXY", ""), "127.0.0.1,localhost"]))
        return {**env, "NO_PROXY": no_proxy, "no_proxy": no_proxy, **extra}

    def _daemon(self, name: str) -> Daemon:
        self._check_name(name)
        chosen, paths, pki = self.ports, self.paths, self.pki
        if name == "etcd":
            return Daemon(
                controlplane.etcd_argv(self._binary("etcd"), paths, chosen),
                lambda: http_health(f"http://{LOOPBACK}:{chosen['etcd-client']}/health"),
                env=self._daemon_env(),
            )
        if name == "kube-apiserver":
            admin = pki.client("admin")
            tls = client_tls(pki.ca.cert, admin.cert, admin.key)
            return Daemon(
                controlplane.apiserver_argv(self._binary("kube-apiserver"), paths, pki, chosen),
                lambda: http_health(f"{self.apiserver_url}/readyz", tls),
                env=self._daemon_env(),
            )
        if name in ("kube-controller-manager", "kube-scheduler"):
            port = chosen[name]
            argv = (
                controlplane.controller_manager_argv(self._binary(name), paths, pki, chosen)
                if name == "kube-controller-manager"
                else controlplane.scheduler_argv(self._binary(name), paths, chosen)
            )
            return Daemon(
                argv,
                lambda: http_health(f"https://{LOOPBACK}:{port}/healthz", unverified_tls()),
                env=self._daemon_env(),
            )
        if name == KAFKA:
            return self._kafka_daemon(chosen)
        if name == POSTGRES:
            return self._postgres_daemon(chosen[POSTGRES])
        if name == "kwok":
            return Daemon(
                controlplane.kwok_argv(self._binary("kwok"), self._binary(building.KWOK_STAGES), paths, chosen),
                lambda: http_health(f"http://{LOOPBACK}:{chosen['kwok']}/healthz"),
                env=self._daemon_env(KWOK_WORKDIR=str(paths.kwok_workdir)),
            )
        return self._operator_daemon(name, chosen)

    def _operator_daemon(self, name: str, chosen: dict[str, int]) -> Daemon:
        """The operator: the working tree's code, as the chart's ServiceAccount, named like a pod
        (POD_NAME, POD_NAMESPACE as the chart's downward API sets them)."""
        metrics, health = chosen[f"{name}-metrics"], chosen[f"{name}-health"]
        return Daemon(
            [
                sys.executable,
                "-m",
                "keelson",
                "operator",
                "run",
                "--metrics-port",
                str(metrics),
                "--health-port",
                str(health),
            ],
            lambda: http_health(f"http://{LOOPBACK}:{health}/healthz"),
            env=self._daemon_env(
                KUBECONFIG=str(self.operator_kubeconfig),
                PYTHONUNBUFFERED="1",
                POD_NAME=name,
                POD_NAMESPACE=cluster.KEELSON_NAMESPACE,
                KEELSON_WEBHOOK_ADDR=LOOPBACK,
                KEELSON_WEBHOOK_PORT=str(chosen[f"{name}-webhook"]),
                KEELSON_WEBHOOK_CERT=str(self.pki.webhook.cert),
                KEELSON_WEBHOOK_KEY=str(self.pki.webhook.key),
            ),
            cwd=repo_root(),
            prepare=self._write_operator_kubeconfig,
        )

    def _kafka_daemon(self, chosen: dict[str, int]) -> Daemon:
        paths, port = self.paths, chosen[KAFKA]
        java, libs = kafkabroker.java_binary(), building.kafka_libs()
        if not libs.is_dir():
            raise StackError(f"Kafka's jars are not in {libs}: run `keelson dev up` (without --no-kafka)")
        security = self._broker_security()

        def health() -> Health:
            if security is None:
                return kafkaprobe.broker_health(LOOPBACK, port)
            tls = ssl.create_default_context(cafile=str(security.truststore))
            user = (security.admin_user, security.admin_password)
            return kafkaprobe.broker_health(LOOPBACK, port, tls=tls, user=user)

        return Daemon(
            kafkabroker.server_argv(java, libs, paths.kafka_log4j, paths.kafka_config),
            health,
            env=self._daemon_env(),
            cwd=paths.kafka,
            prepare=lambda: kafkabroker.prepare(paths, chosen, java, libs, security),
        )

    def _postgres_daemon(self, port: int) -> Daemon:
        binaries, base, password_file = pgserver.bin_dir(), self.paths.postgres, self.paths.postgres_password
        account = pgserver.ensure_account(pgserver.data_owner(base))
        dirs = pgserver.plan_dirs(base, self.state_dir, account, port)

        def health() -> Health:
            try:
                password = password_file.read_text().strip()
            except FileNotFoundError:
                return Health(False, f"no {password_file}")
            return pgserver.admin_health(binaries, port, password)

        return Daemon(
            pgconfig.server_argv(binaries, dirs.data, dirs.sockets, port),
            health,
            env=self._daemon_env(),
            # Somewhere the account may be, whatever the state dir's modes are.
            cwd=dirs.sockets,
            prepare=lambda: pgserver.prepare(binaries, base, dirs, account, password_file),
            user=None if account.is_me else account.uid,
            group=None if account.is_me else account.gid,
        )

    def apply_manifest(self, text: str, namespace: str, progress: Progress = _quiet) -> None:
        """`keelson dev apply`: apply manifests adapted to this stack (its Kafka and PostgreSQL,
        see localize.py) into a namespace, with the admin Secret the platforms refer to there."""
        status = self.status()
        kafka = self.kafka_settings() if status.get(KAFKA) == "healthy" else None
        postgres = status.get(POSTGRES) == "healthy"
        docs = [localize(d, kafka=kafka, postgres=postgres) for d in _yaml_docs(text)]
        kubectl = self.kubectl()
        kubectl.apply(yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
        if kafka and not self.kafka_plaintext:
            self.apply_kafka_secrets(namespace)
            progress(f"kafka: Secrets {namespace}/{KAFKA_ADMIN_SECRET} and {KAFKA_CA_SECRET} applied")
        if postgres:
            password = self.paths.postgres_password.read_text().strip()
            kubectl.apply(pgconfig.admin_secret_manifest(password, self.ports[POSTGRES], namespace))
            progress(f"postgres: Secret {namespace}/{pgconfig.ADMIN_SECRET_NAME} applied")
        for doc in docs:
            doc.setdefault("metadata", {})["namespace"] = namespace
        progress(kubectl.apply(yaml.safe_dump_all(docs, sort_keys=False)).strip())

    def _apply_admin_secret(self, progress: Progress) -> None:
        # Through stdin, never argv: the manifest holds the password.
        password = self.paths.postgres_password.read_text().strip()
        self.kubectl().apply(pgconfig.admin_secret_manifest(password, self.ports[POSTGRES]))
        progress(
            f"postgres: Secret {pgconfig.ADMIN_SECRET_NAMESPACE}/{pgconfig.ADMIN_SECRET_NAME} applied "
            "(uri, host, port, user, password)"
        )

    def _write_operator_kubeconfig(self) -> None:
        # A new token at every start: tokens expire, and a restart is when one is needed.
        token = cluster.create_operator_token(self.kubectl())
        write_private(
            self.operator_kubeconfig,
            render_kubeconfig(
                server=self.apiserver_url,
                ca_pem=self.pki.ca.cert.read_bytes(),
                user=f"system:serviceaccount:{cluster.KEELSON_NAMESPACE}:{cluster.OPERATOR_SERVICE_ACCOUNT}",
                token=token,
            ),
        )

    def _launch(self, name: str) -> tuple[Daemon, float, bool]:
        """Start ``name`` unless it is running. Returns its daemon, start time, and whether it was launched."""
        daemon = self._daemon(name)
        if processes.alive(self.state_dir, name):
            return daemon, time.monotonic(), False
        if daemon.prepare is not None:
            daemon.prepare()
        processes.start(
            self.state_dir, name, daemon.argv, env=daemon.env, cwd=daemon.cwd, user=daemon.user, group=daemon.group
        )
        return daemon, time.monotonic(), True

    def _await_healthy(self, name: str, launched: tuple[Daemon, float, bool], progress: Progress) -> None:
        daemon, since, fresh = launched
        wait_until(
            daemon.health,
            what=name,
            timeout=STARTUP_TIMEOUTS[name],
            still_running=lambda: processes.alive(self.state_dir, name),
            diagnostics=lambda: f"last lines of {self.log_path(name)}:\n{processes.log_tail(self.state_dir, name)}",
        )
        if fresh:
            progress(f"{name}: started, healthy after {time.monotonic() - since:.1f}s")
        else:
            progress(f"{name}: already running, healthy")

    def _ensure_running(self, name: str, progress: Progress) -> None:
        self._await_healthy(name, self._launch(name), progress)

    def _stop_all(self, progress: Progress) -> None:
        # Clients before servers, so nothing logs a storm of connection errors on the way down.
        known = [*OPERATORS, *DATA_SERVICES, *reversed(CONTROL_PLANE)]
        others = [name for name in processes.running_names(self.state_dir) if name not in known]
        for name in [*others, *known]:
            if processes.stop(self.state_dir, name, sig=stop_signal(name)):
                progress(f"{name}: stopped")

    def _apply_nodes(self, progress: Progress) -> None:
        self.kubectl().apply(cluster.nodes_yaml())
        progress(f"nodes: {', '.join(cluster.node_name(i) for i in range(cluster.NODE_COUNT))} applied")

    def _install_chart(self, progress: Progress) -> None:
        chart = self._chart or default_chart()
        # The admission webhook calls the working tree's operator on loopback, with the stack's CA.
        webhook = {
            "webhook.url": f"https://{LOOPBACK}:{self.ports[f'{OPERATOR}-webhook']}",
            "webhook.caBundle": self.pki.ca.cert.read_text(),
        }
        rendered = cluster.render_chart(self._binary("helm"), chart, KUBERNETES_VERSION, webhook)
        kubectl = self.kubectl()
        kubectl.apply(cluster.namespace_yaml(cluster.KEELSON_NAMESPACE))
        kubectl.apply(rendered)
        # The CRDs must serve before anyone (the operator, a test) uses them.
        crds = [
            doc["metadata"]["name"] for doc in _yaml_docs(rendered) if doc.get("kind") == "CustomResourceDefinition"
        ]
        if crds:
            kubectl.run(["wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in crds)])
        progress(f"chart: {chart} applied (operator.deploy=false, {len(crds)} CRD(s))")

    def _list_nodes(self) -> dict[str, Any]:
        admin = self.pki.client("admin")
        tls = client_tls(self.pki.ca.cert, admin.cert, admin.key)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=tls))
        with opener.open(f"{self.apiserver_url}/api/v1/nodes", timeout=5) as response:
            data: dict[str, Any] = json.load(response)
        return data

    def _nodes_health(self) -> Health:
        try:
            ready = cluster.ready_nodes(self._list_nodes())
        except OSError as error:
            return Health(False, str(error))
        return Health(len(ready) >= cluster.NODE_COUNT, f"{len(ready)}/{cluster.NODE_COUNT} Ready")

    def _await_nodes_ready(self, progress: Progress) -> None:
        health = wait_until(
            self._nodes_health,
            what="kwok nodes",
            timeout=NODES_READY_TIMEOUT,
            diagnostics=lambda: processes.log_tail(self.state_dir, "kwok"),
        )
        progress(f"nodes: {health.detail}")

    def _nodes_status(self) -> str:
        return self._nodes_health().detail

    def _component_status(self, name: str) -> str:
        if not processes.alive(self.state_dir, name):
            return "stopped"
        health = self._daemon(name).health()
        return "healthy" if health.ok else f"unhealthy ({health.detail})"

    def _skip_unwanted(self, *, kafka: bool, postgres: bool, operator: bool, progress: Progress) -> dict[str, str]:
        """Stop what this `up` leaves out (its data stays); what status says about each."""
        skipped: dict[str, str] = {}
        for name, wanted in ((KAFKA, kafka), (POSTGRES, postgres), (OPERATOR, operator)):
            if wanted:
                continue
            skipped[name] = f"not started (--no-{name})"
            if processes.stop(self.state_dir, name, sig=stop_signal(name)):
                progress(f"{name}: stopped (--no-{name})")
            elif name != OPERATOR:
                progress(f"{name}: {skipped[name]}")
        return skipped


def _yaml_docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
