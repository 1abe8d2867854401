"""How a Kafka client connects: plaintext or TLS, with or without SASL/SCRAM. Shared by the
operator's admin client and the services' producers and consumers, so both speak to the brokers
the same way; it builds the keyword arguments aiokafka's clients take and imports no client.

The environment form (`from_env`) is what a service's pod gets (ConfigMap and Secrets, see
`render.kafkausers`) and what `keelson dev env` exports for the local stack:

- KEELSON_KAFKA_SECURITY_PROTOCOL: PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL;
- KEELSON_KAFKA_SASL_MECHANISM: SCRAM-SHA-512 (with a SASL protocol);
- KEELSON_KAFKA_USERNAME, KEELSON_KAFKA_PASSWORD: the SASL credentials;
- KEELSON_KAFKA_CA (a PEM bundle) or KEELSON_KAFKA_CA_FILE (its path): the CA that signed the
  brokers' certificates; neither: the system's trusted CAs.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SCRAM_SHA_512 = "SCRAM-SHA-512"
MECHANISMS = (SCRAM_SHA_512,)
ENV_PREFIX = "KEELSON_KAFKA_"


class KafkaSecurityError(ValueError):
    """The settings do not describe a usable connection."""


@dataclass(frozen=True)
class KafkaSecurity:
    tls: bool = False
    mechanism: str | None = None  # a SASL mechanism; None: no SASL
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never printed
    ca_pem: str | None = field(default=None, repr=False)
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if self.mechanism is not None and self.mechanism not in MECHANISMS:
            raise KafkaSecurityError(f"unsupported SASL mechanism {self.mechanism!r}; supported: {MECHANISMS}")
        if self.mechanism and not (self.username and self.password):
            raise KafkaSecurityError(f"SASL {self.mechanism} needs a username and a password")

    @property
    def protocol(self) -> str:
        return ("SASL_" if self.mechanism else "") + ("SSL" if self.tls else "PLAINTEXT")

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the brokers' certificates and host names, against the given CA or the system's."""
        return ssl.create_default_context(cafile=self.ca_file or None, cadata=self.ca_pem or None)

    def options(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.mechanism:
            options.update(
                sasl_mechanism=self.mechanism, sasl_plain_username=self.username, sasl_plain_password=self.password
            )
        return options

    def as_user(self, username: str, password: str) -> KafkaSecurity:
        """The same connection, authenticated as another user."""
        return KafkaSecurity(self.tls, self.mechanism or SCRAM_SHA_512, username, password, self.ca_pem, self.ca_file)

    def env(self) -> dict[str, str]:
        """The environment form (`from_env` reads it back)."""
        env = {f"{ENV_PREFIX}SECURITY_PROTOCOL": self.protocol}
        if self.mechanism:
            env[f"{ENV_PREFIX}SASL_MECHANISM"] = self.mechanism
            env[f"{ENV_PREFIX}USERNAME"] = self.username or ""
            env[f"{ENV_PREFIX}PASSWORD"] = self.password or ""
        if self.ca_pem:
            env[f"{ENV_PREFIX}CA"] = self.ca_pem
        if self.ca_file:
            env[f"{ENV_PREFIX}CA_FILE"] = self.ca_file
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSecurity:
        def get(name: str) -> str | None:
            return env.get(f"{ENV_PREFIX}{name}", "").strip() or None

        protocol = (get("SECURITY_PROTOCOL") or "PLAINTEXT").upper()
        if protocol not in PROTOCOLS:
            raise KafkaSecurityError(f"{ENV_PREFIX}SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}")
        sasl = protocol.startswith("SASL_")
        mechanism = (get("SASL_MECHANISM") or SCRAM_SHA_512).upper() if sasl else None
        try:
            return cls(
                tls=protocol.endswith("SSL"),
                mechanism=mechanism,
                username=get("USERNAME") if sasl else None,
                password=get("PASSWORD") if sasl else None,
                ca_pem=get("CA"),
                ca_file=get("CA_FILE"),
            )
        except KafkaSecurityError as exc:
            raise KafkaSecurityError(
                f"{exc} (set {ENV_PREFIX}USERNAME and {ENV_PREFIX}PASSWORD, or another protocol)"
            ) from None


PLAINTEXT = KafkaSecurity()
