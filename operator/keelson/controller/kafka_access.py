"""How the operator reaches a platform's brokers: `spec.kafka`'s TLS and authentication, with the
CA and the admin credentials read from the Secrets they name. Shared by the topics and the Kafka
users areas; nothing here ever puts a Secret's value into a message."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from typing import Any

from keelson.api.v1alpha1 import Kafka
from keelson.controller.database_pass import SecretReader
from keelson.kafkaclient import SCRAM_SHA_512, KafkaSecurity
from keelson.kube.client import ApiError
from keelson.kube.resources import SECRET_KIND
from keelson.render.kafkausers import DEFAULT_CA_KEY

log = logging.getLogger("keelson.kafka")


class KafkaAccessProblem(Exception):
    """A Secret `spec.kafka` names is missing or unusable: `reason` is a condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _value(secret: dict[str, Any], key: str) -> str | None:
    raw = (secret.get("data") or {}).get(key)
    if raw:
        try:
            return base64.b64decode(raw).decode() or None
        except (ValueError, UnicodeDecodeError):
            return None
    return (secret.get("stringData") or {}).get(key) or None


@dataclass
class KafkaAccess:
    """Reads the Secrets; remembers the last settings per (namespace, Secrets) in memory, for the
    cleanup of a platform whose namespace (and so whose Secrets) is going away with it: deleting a
    namespace usually deletes its Secrets first, and a cleanup waiting for them would wait for ever."""

    client: SecretReader | None
    remembered: dict[tuple[str, str], KafkaSecurity] = field(default_factory=dict)

    async def _secret(self, namespace: str, name: str, what: str) -> dict[str, Any] | None:
        if self.client is None:
            raise KafkaAccessProblem(f"{what}Unreadable", f"Secret {name}: no Kubernetes client")
        try:
            return await self.client.get(SECRET_KIND, namespace, name)
        except ApiError as exc:
            raise KafkaAccessProblem(f"{what}Unreadable", f"Secret {name}: {exc.status} {exc.reason}") from None

    async def security(self, namespace: str, kafka: Kafka, *, deleting: bool = False) -> KafkaSecurity:
        """The operator's connection settings for `kafka` (plaintext when it sets neither). While
        the platform is deleted, a Secret gone with its namespace is replaced by what was last read."""
        ca = kafka.tls.caSecretRef.name if kafka.tls and kafka.tls.caSecretRef else ""
        auth = kafka.authentication
        admin = auth.adminSecretRef.name if auth and auth.adminSecretRef else ""
        key = (namespace, f"{ca}/{admin}")
        try:
            security = await self._read(namespace, kafka)
        except KafkaAccessProblem as exc:
            remembered = self.remembered.get(key)
            if deleting and remembered is not None and exc.reason.endswith("Missing"):
                log.warning("Kafka Secrets of %s are gone (%s); cleaning up with those last read", namespace, exc)
                return remembered
            raise
        self.remembered[key] = security
        return security

    async def _read(self, namespace: str, kafka: Kafka) -> KafkaSecurity:
        ca_pem = None
        if kafka.tls and kafka.tls.caSecretRef:
            ref = kafka.tls.caSecretRef
            secret = await self._secret(namespace, ref.name, "CaSecret")
            if secret is None:
                raise KafkaAccessProblem("CaSecretMissing", f"Secret {ref.name} not found in namespace {namespace}")
            ca_pem = _value(secret, ref.key or DEFAULT_CA_KEY)
            if not ca_pem:
                raise KafkaAccessProblem("CaSecretInvalid", f"Secret {ref.name} has no key {ref.key or DEFAULT_CA_KEY}")
        auth = kafka.authentication
        if auth is None or kafka.provider != "admin":
            return KafkaSecurity(tls=bool(kafka.tls), ca_pem=ca_pem)
        if auth.adminSecretRef is None:
            raise KafkaAccessProblem("AdminSecretMissing", "spec.kafka.authentication.adminSecretRef is not set")
        name = auth.adminSecretRef.name
        secret = await self._secret(namespace, name, "AdminSecret")
        if secret is None:
            raise KafkaAccessProblem("AdminSecretMissing", f"Secret {name} not found in namespace {namespace}")
        username, password = _value(secret, "username"), _value(secret, "password")
        if not username or not password:
            raise KafkaAccessProblem("AdminSecretInvalid", f"Secret {name} needs the keys username and password")
        return KafkaSecurity(
            tls=bool(kafka.tls), mechanism=SCRAM_SHA_512, username=username, password=password, ca_pem=ca_pem
        )
