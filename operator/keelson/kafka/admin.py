"""The operator's Kafka Admin API adapter: describe, create, grow and configure topics; SCRAM
users and their ACLs (`kafka.protocol` has the requests aiokafka lacks).

Only this module imports the Kafka client. Every call has a deadline, so an unreachable broker
turns into a `BrokerUnavailable` within seconds instead of a reconcile that hangs; and the session
as a whole has one, so a broker that answers each call just in time cannot stretch a pass to the
sum of all of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError
from prometheus_client import Counter

from keelson.kafka import protocol
from keelson.kafkaclient import PLAINTEXT, KafkaSecurity

KAFKA_ADMIN_REQUESTS = Counter(
    "keelson_kafka_admin_requests_total", "Requests sent to Kafka's Admin API, reads included (and connects)."
)

DEADLINE_SECONDS = 10.0
SESSION_DEADLINE_SECONDS = 30.0  # from connecting to the last request of one reconcile


class BrokerUnavailable(Exception):
    """The brokers cannot be reached (or did not answer in time)."""


class AdminRequestFailed(Exception):
    """The brokers answered with an error for a request."""


@dataclass(frozen=True)
class LiveTopic:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]  # only the configs set on the topic itself (not broker defaults)


TOPIC_ALREADY_EXISTS = 36
RESOURCE_NOT_FOUND = 91  # DescribeUserScramCredentials: the user has no credentials
DYNAMIC_TOPIC_CONFIG = 1
# Kafka's minimum for SCRAM-SHA-512, and what its own tools use.
SCRAM_ITERATIONS = 4096

# An ACL as the brokers hold it: resource type, name, pattern type, host, operation, permission.
RawAcl = tuple[int, str, int, str, int, int]


def raw_acl(resource_type: str, name: str, operation: str) -> RawAcl:
    """A literal allow rule from any host, in the form `acls` returns."""
    return (
        protocol.RESOURCE_TYPES[resource_type],
        name,
        protocol.LITERAL,
        "*",
        protocol.OPERATIONS[operation],
        protocol.ALLOW,
    )


def salted_password(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> bytes:
    """SCRAM's Hi(password, salt, i) for SHA-512 (RFC 5802): what the brokers derive their keys from."""
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)


def _set_on_topic(entry: tuple[Any, ...]) -> bool:
    """Whether a described config entry was set on the topic itself rather than inherited.
    DescribeConfigs v1+ entries are (name, value, read_only, source, sensitive, synonyms);
    v0 entries are (name, value, read_only, is_default, sensitive)."""
    if len(entry) >= 6:
        return bool(entry[3] == DYNAMIC_TOPIC_CONFIG)
    return not entry[3]


def _check(response: Any, what: str, *, benign: tuple[int, ...] = ()) -> None:
    """Raise on per-topic error codes in an admin response (they do not raise by themselves)."""
    for entry in getattr(response, "topic_errors", None) or getattr(response, "topic_error_codes", None) or []:
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else ""
        if code and code not in benign:
            raise AdminRequestFailed(f"{what} {name}: error {code} {message or ''}".strip())


class KafkaAdmin:
    """One connection to a cluster for the length of a reconcile (`async with`)."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        security: KafkaSecurity = PLAINTEXT,
        client_id: str = "keelson-operator",
        session_deadline: float = SESSION_DEADLINE_SECONDS,
    ) -> None:
        self._client = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            request_timeout_ms=int(DEADLINE_SECONDS * 1000),
            **security.options(),
        )
        self._session_deadline = session_deadline
        self._ends_at = float("inf")
        self.writes = 0  # create/alter/delete requests sent: idempotency is checked on this

    def _budget(self) -> float:
        """Seconds the next call may take: its own deadline, within what is left of the session."""
        left = self._ends_at - asyncio.get_running_loop().time()
        if left <= 0:
            raise BrokerUnavailable(f"the admin session ran past its deadline of {self._session_deadline:g} s")
        return min(DEADLINE_SECONDS, left)

    async def __aenter__(self) -> KafkaAdmin:
        self._ends_at = asyncio.get_running_loop().time() + self._session_deadline
        KAFKA_ADMIN_REQUESTS.inc()
        try:
            await asyncio.wait_for(self._client.start(), self._budget())
        except (TimeoutError, KafkaConnectionError, KafkaError, OSError) as exc:
            await self._close_quietly()
            raise BrokerUnavailable(f"cannot reach the brokers: {exc or type(exc).__name__}") from exc
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._close_quietly()

    async def _close_quietly(self) -> None:
        try:
            await asyncio.wait_for(self._client.close(), DEADLINE_SECONDS)
        except Exception:  # closing a half-open client must never mask the real error
            return

    async def _call(self, awaitable: Any) -> Any:
        try:
            budget = self._budget()
        except BrokerUnavailable:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()  # never started: no "coroutine was never awaited" warning
            raise
        KAFKA_ADMIN_REQUESTS.inc()
        try:
            return await asyncio.wait_for(awaitable, budget)
        except (TimeoutError, KafkaConnectionError, OSError) as exc:
            raise BrokerUnavailable(f"the brokers did not answer: {exc or type(exc).__name__}") from exc
        except KafkaError as exc:
            raise AdminRequestFailed(str(exc)) from exc

    async def describe(self, names: Iterable[str]) -> dict[str, LiveTopic]:
        """The topics among `names` that exist."""
        wanted = set(names)
        existing = wanted & set(await self._call(self._client.list_topics()))
        if not existing:
            return {}
        described = await self._call(self._client.describe_topics(sorted(existing)))
        shapes: dict[str, tuple[int, int]] = {}
        for topic in described:
            if topic.get("error_code"):
                continue
            partitions = topic["partitions"]
            replicas = len(partitions[0]["replicas"]) if partitions else 0
            shapes[topic["topic"]] = (len(partitions), replicas)
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in sorted(shapes)]
        configs: dict[str, dict[str, str]] = {name: {} for name in shapes}
        for response in await self._call(self._client.describe_configs(resources)):
            for _code, _msg, _type, name, entries in response.resources:
                for entry in entries:
                    if _set_on_topic(entry):
                        configs[name][entry[0]] = entry[1]
        return {name: LiveTopic(name, p, rf, configs.get(name, {})) for name, (p, rf) in shapes.items()}

    async def create(self, topics: list[tuple[str, int, int, dict[str, str]]]) -> None:
        if not topics:
            return
        new = [NewTopic(n, num_partitions=p, replication_factor=rf, topic_configs=c) for n, p, rf, c in topics]
        self.writes += 1
        # Already there means another reconcile won the race: the end state is the same.
        _check(await self._call(self._client.create_topics(new)), "create", benign=(TOPIC_ALREADY_EXISTS,))

    async def grow(self, partitions: dict[str, int]) -> None:
        if not partitions:
            return
        self.writes += 1
        request = {name: NewPartitions(total_count=count) for name, count in partitions.items()}
        _check(await self._call(self._client.create_partitions(request)), "add partitions to")

    async def configure(self, configs: dict[str, dict[str, str]]) -> None:
        if not configs:
            return
        self.writes += 1
        resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs=c) for name, c in configs.items()]
        for response in await self._call(self._client.alter_configs(resources)):
            for code, message, _type, name in response.resources:
                if code:
                    raise AdminRequestFailed(f"configure {name}: error {code} {message or ''}".strip())

    async def delete(self, names: list[str]) -> None:
        if not names:
            return
        self.writes += 1
        _check(await self._call(self._client.delete_topics(names)), "delete")

    # -- SCRAM users and ACLs ------------------------------------------------------------------

    async def _send(self, request: Any) -> Any:
        return await self._call(self._client._send_request(request))

    async def scram_users(self, names: Iterable[str]) -> set[str]:
        """The users among `names` that have SCRAM-SHA-512 credentials."""
        wanted = sorted(set(names))
        if not wanted:
            return set()
        response = await self._send(protocol.DescribeUserScramCredentials(wanted))
        if response.error_code:
            raise AdminRequestFailed(
                f"describe SCRAM users: error {response.error_code} {response.error_message or ''}"
            )
        found = set()
        for user, code, message, infos, _tags in response.results:
            if code == RESOURCE_NOT_FOUND:
                continue
            if code:
                raise AdminRequestFailed(f"describe SCRAM user {user}: error {code} {message or ''}".strip())
            if any(mechanism == protocol.SCRAM_SHA_512 for mechanism, _i, _t in infos):
                found.add(user)
        return found

    async def _alter_scram(self, request: protocol.AlterUserScramCredentials, what: str) -> None:
        self.writes += 1
        response = await self._send(request)
        for user, code, message, _tags in response.results:
            if code and not (what == "delete" and code == RESOURCE_NOT_FOUND):
                raise AdminRequestFailed(f"{what} SCRAM credentials of {user}: error {code} {message or ''}".strip())

    async def set_passwords(self, passwords: dict[str, str]) -> None:
        """Create or replace users' SCRAM-SHA-512 credentials. Only a salted hash leaves this
        process, never the password."""
        if not passwords:
            return
        upserts = []
        for user, password in sorted(passwords.items()):
            salt = secrets.token_bytes(32)
            upserts.append((user, SCRAM_ITERATIONS, salt, salted_password(password, salt)))
        await self._alter_scram(protocol.AlterUserScramCredentials(upsert=upserts), "set")

    async def delete_users(self, names: Iterable[str]) -> None:
        """Remove users' SCRAM-SHA-512 credentials (missing ones are fine)."""
        wanted = sorted(set(names))
        if wanted:
            await self._alter_scram(protocol.AlterUserScramCredentials(delete=wanted), "delete")

    async def acls(self, principal: str) -> set[RawAcl]:
        """Every ACL of a principal (`User:<name>`), whatever it allows or denies."""
        response = await self._send(protocol.DescribeAcls(principal))
        if response.error_code:
            raise AdminRequestFailed(
                f"describe ACLs of {principal}: error {response.error_code} {response.error_message or ''}"
            )
        return {
            (rtype, name, pattern, host, operation, permission)
            for rtype, name, pattern, entries in response.resources
            for _principal, host, operation, permission in entries
        }

    async def create_acls(self, principal: str, acls: Iterable[RawAcl]) -> None:
        wanted = sorted(acls)
        if not wanted:
            return
        self.writes += 1
        request = protocol.CreateAcls(principal, [])
        request.creations = [(r, n, p, principal, h, o, perm) for r, n, p, h, o, perm in wanted]
        response = await self._send(request)
        for code, message in response.results:
            if code:
                raise AdminRequestFailed(f"create ACLs of {principal}: error {code} {message or ''}".strip())

    async def delete_acls(self, principal: str, acls: Iterable[RawAcl] = (), *, everything: bool = False) -> None:
        wanted = sorted(acls)
        if not wanted and not everything:
            return
        self.writes += 1
        request = protocol.DeleteAcls(principal, [], everything=everything)
        if not everything:
            request.filters = [(r, n, p, principal, h, o, perm) for r, n, p, h, o, perm in wanted]
        response = await self._send(request)
        for code, message, _matching in response.filter_results:
            if code:
                raise AdminRequestFailed(f"delete ACLs of {principal}: error {code} {message or ''}".strip())
