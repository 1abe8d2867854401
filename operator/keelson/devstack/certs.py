"""A throwaway PKI for one local stack, made with the openssl CLI.

Everything lives in ``<state>/pki`` and dies with the stack. Keys are unencrypted and the CA
is valid for ten years: this guards nothing, it only satisfies the apiserver's TLS and
client-certificate authentication.
"""

import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

DAYS = "3650"
# What the apiserver is reached as: on loopback, and as the `kubernetes` Service's first IP of
# --service-cluster-ip-range=10.0.0.0/16 (what in-cluster clients would dial).
APISERVER_SANS = (
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
    "IP:127.0.0.1",
    "IP:10.0.0.1",
)
# The Kafka broker's certificate: it serves clients (on loopback) and, as its own controller's
# client, authenticates with it on the CONTROLLER listener (mutual TLS).
KAFKA_SANS = ("DNS:localhost", "IP:127.0.0.1")
KAFKA_BROKER_CN = "keelson-kafka"
ADMIN_USER = "keelson-admin"
MASTERS_GROUP = "system:masters"


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    directory: Path

    @property
    def ca(self) -> KeyPair:
        return KeyPair(self.directory / "ca.crt", self.directory / "ca.key")

    @property
    def apiserver(self) -> KeyPair:
        return KeyPair(self.directory / "apiserver.crt", self.directory / "apiserver.key")

    @property
    def service_account_key(self) -> Path:
        """One RSA private key: the apiserver signs tokens with it and verifies them with it."""
        return self.directory / "service-account.key"

    @property
    def kafka(self) -> KeyPair:
        return KeyPair(self.directory / "kafka.crt", self.directory / "kafka.key")

    @property
    def kafka_keystore(self) -> Path:
        """The broker's key and certificate in one PEM file, Kafka's PEM keystore form."""
        return self.directory / "kafka-keystore.pem"

    @property
    def webhook(self) -> KeyPair:
        """The operator's admission webhook, which the API server calls on loopback."""
        return KeyPair(self.directory / "webhook.crt", self.directory / "webhook.key")

    def client(self, name: str) -> KeyPair:
        return KeyPair(self.directory / f"{name}.crt", self.directory / f"{name}.key")


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _ec_key(path: Path) -> None:
    # P-256: quick to generate, and accepted everywhere for TLS serving and client certs.
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    path.chmod(0o600)


def _subject(common_name: str, organizations: tuple[str, ...] = ()) -> str:
    return "".join(f"/O={org}" for org in organizations) + f"/CN={common_name}"


def _sign(ca: KeyPair, key: Path, cert: Path, subject: str, extensions: list[str]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        csr = Path(scratch) / "req.csr"
        ext = Path(scratch) / "ext.cnf"
        ext.write_text("".join(f"{line}\n" for line in extensions))
        _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
            "-set_serial", f"0x{secrets.token_hex(16)}", "-days", DAYS, "-sha256",
            "-extfile", str(ext), "-out", str(cert),
        )  # fmt: skip


def _ensure_ca(ca: KeyPair) -> None:
    if ca.cert.exists() and ca.key.exists():
        return
    _ec_key(ca.key)
    _openssl(
        "req", "-x509", "-new", "-key", str(ca.key), "-subj", "/CN=keelson-local-ca", "-days", DAYS,
        "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", "-out", str(ca.cert),
    )  # fmt: skip


def ensure_serving_cert(pki: Pki) -> KeyPair:
    pair = pki.apiserver
    if not (pair.cert.exists() and pair.key.exists()):
        _ec_key(pair.key)
        _sign(
            pki.ca, pair.key, pair.cert, _subject("kube-apiserver"),
            [
                "basicConstraints=critical,CA:FALSE",
                "keyUsage=critical,digitalSignature,keyEncipherment",
                "extendedKeyUsage=serverAuth",
                f"subjectAltName={','.join(APISERVER_SANS)}",
            ],
        )  # fmt: skip
    return pair


def ensure_kafka_cert(pki: Pki) -> Path:
    """The broker's serving and client certificate, and the PEM keystore Kafka reads it from."""
    pair = pki.kafka
    if not (pair.cert.exists() and pair.key.exists()):
        _ec_key(pair.key)
        _sign(
            pki.ca, pair.key, pair.cert, _subject(KAFKA_BROKER_CN),
            [
                "basicConstraints=critical,CA:FALSE",
                "keyUsage=critical,digitalSignature,keyEncipherment",
                "extendedKeyUsage=serverAuth,clientAuth",
                f"subjectAltName={','.join(KAFKA_SANS)}",
            ],
        )  # fmt: skip
    keystore = pki.kafka_keystore
    if not keystore.exists():
        keystore.write_text(pair.key.read_text() + pair.cert.read_text())
        keystore.chmod(0o600)
    return keystore


def ensure_webhook_cert(pki: Pki) -> KeyPair:
    pair = pki.webhook
    if not (pair.cert.exists() and pair.key.exists()):
        _ec_key(pair.key)
        _sign(
            pki.ca, pair.key, pair.cert, _subject("keelson-operator-webhook"),
            [
                "basicConstraints=critical,CA:FALSE",
                "keyUsage=critical,digitalSignature,keyEncipherment",
                "extendedKeyUsage=serverAuth",
                "subjectAltName=IP:127.0.0.1",
            ],
        )  # fmt: skip
    return pair


def ensure_client_cert(pki: Pki, name: str, user: str, groups: tuple[str, ...] = ()) -> KeyPair:
    """A client certificate: CN is the Kubernetes user name, each O one of its groups.

    With no groups the user has no permissions until RBAC grants some: the way to run a
    client with exactly a chart's permissions.
    """
    pair = pki.client(name)
    if not (pair.cert.exists() and pair.key.exists()):
        _ec_key(pair.key)
        _sign(
            pki.ca, pair.key, pair.cert, _subject(user, groups),
            [
                "basicConstraints=critical,CA:FALSE",
                "keyUsage=critical,digitalSignature,keyEncipherment",
                "extendedKeyUsage=clientAuth",
            ],
        )  # fmt: skip
    return pair


def ensure_service_account_key(pki: Pki) -> Path:
    path = pki.service_account_key
    if not path.exists():
        # RSA: what every consumer of service-account token keys supports.
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path))
        path.chmod(0o600)
    return path


def ensure_pki(directory: Path) -> Pki:
    """CA, apiserver serving cert, admin client cert and service-account key, made if missing."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    pki = Pki(directory)
    _ensure_ca(pki.ca)
    ensure_serving_cert(pki)
    ensure_client_cert(pki, "admin", ADMIN_USER, (MASTERS_GROUP,))
    ensure_service_account_key(pki)
    ensure_webhook_cert(pki)
    return pki
