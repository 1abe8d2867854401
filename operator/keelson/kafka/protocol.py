"""The Admin API requests aiokafka lacks: ACLs in batches (CreateAcls, DescribeAcls, DeleteAcls
v1) and SCRAM credentials (AlterUserScramCredentials, DescribeUserScramCredentials v0, KIP-554),
written in aiokafka's own protocol types so that its connections negotiate and send them.

Enum values are Kafka's (org.apache.kafka.common.acl / resource / ScramMechanism).
"""
# mypy: disable-error-code="misc"
# (aiokafka is untyped here: its base classes are Any.)

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Array,
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    String,
    TaggedFields,
)

RESOURCE_TYPES = {"topic": 2, "group": 3}
RESOURCE_NAMES = {v: k for k, v in RESOURCE_TYPES.items()}
OPERATIONS = {"Read": 3, "Write": 4}
OPERATION_NAMES = {v: k for k, v in OPERATIONS.items()}
ANY = 1  # resource type, pattern type, operation and permission filters alike
LITERAL = 3
ALLOW = 3
SCRAM_SHA_512 = 2

_STR = String("utf-8")
_CSTR = CompactString("utf-8")
_ACL_BINDING = (
    ("resource_type", Int8),
    ("resource_name", _STR),
    ("pattern_type", Int8),
    ("principal", _STR),
    ("host", _STR),
    ("operation", Int8),
    ("permission_type", Int8),
)


# -- ACLs (v1: resource pattern types; the oldest version Kafka 4 still serves) --------------------


class DescribeAclsResponse_v1(Response):
    API_KEY = 29
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", _STR),
        (
            "resources",
            Array(
                ("resource_type", Int8),
                ("resource_name", _STR),
                ("pattern_type", Int8),
                ("acls", Array(("principal", _STR), ("host", _STR), ("operation", Int8), ("permission_type", Int8))),
            ),
        ),
    )


class DescribeAclsRequest_v1(RequestStruct):
    API_KEY = 29
    API_VERSION = 1
    RESPONSE_TYPE = DescribeAclsResponse_v1
    SCHEMA = Schema(*_ACL_BINDING)


class DescribeAcls(Request[DescribeAclsRequest_v1]):
    """Every ACL of one principal, on any resource."""

    API_KEY = 29

    def __init__(self, principal: str) -> None:
        self.principal = principal

    def build(self, request_struct_class: type[DescribeAclsRequest_v1]) -> DescribeAclsRequest_v1:
        return request_struct_class(ANY, None, ANY, self.principal, None, ANY, ANY)


class CreateAclsResponse_v1(Response):
    API_KEY = 30
    API_VERSION = 1
    SCHEMA = Schema(("throttle_time_ms", Int32), ("results", Array(("error_code", Int16), ("error_message", _STR))))


class CreateAclsRequest_v1(RequestStruct):
    API_KEY = 30
    API_VERSION = 1
    RESPONSE_TYPE = CreateAclsResponse_v1
    SCHEMA = Schema(("creations", Array(*_ACL_BINDING)))


def _binding(principal: str, resource_type: str, name: str, operation: str) -> tuple[Any, ...]:
    return (RESOURCE_TYPES[resource_type], name, LITERAL, principal, "*", OPERATIONS[operation], ALLOW)


class CreateAcls(Request[CreateAclsRequest_v1]):
    """Allow rules, literal, from any host: (resource type, name, operation) each."""

    API_KEY = 30

    def __init__(self, principal: str, acls: list[tuple[str, str, str]]) -> None:
        self.creations = [_binding(principal, *acl) for acl in acls]

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self.creations)


class DeleteAclsResponse_v1(Response):
    API_KEY = 31
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "filter_results",
            Array(
                ("error_code", Int16),
                ("error_message", _STR),
                ("matching_acls", Array(("error_code", Int16), ("error_message", _STR), *_ACL_BINDING)),
            ),
        ),
    )


class DeleteAclsRequest_v1(RequestStruct):
    API_KEY = 31
    API_VERSION = 1
    RESPONSE_TYPE = DeleteAclsResponse_v1
    SCHEMA = Schema(("filters", Array(*_ACL_BINDING)))


class DeleteAcls(Request[DeleteAclsRequest_v1]):
    """Exactly the given allow rules of a principal; with `everything`, all of its ACLs."""

    API_KEY = 31

    def __init__(self, principal: str, acls: list[tuple[str, str, str]], *, everything: bool = False) -> None:
        if everything:
            self.filters: list[tuple[Any, ...]] = [(ANY, None, ANY, principal, None, ANY, ANY)]
        else:
            self.filters = [_binding(principal, *acl) for acl in acls]

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> DeleteAclsRequest_v1:
        return request_struct_class(self.filters)


# -- SCRAM credentials (flexible versions only) ----------------------------------------------------


class AlterUserScramCredentialsResponse_v0(Response):
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(("user", _CSTR), ("error_code", Int16), ("error_message", _CSTR), ("tags", TaggedFields)),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest_v0(RequestStruct):
    FLEXIBLE_VERSION: ClassVar[bool] = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        ("deletions", CompactArray(("name", _CSTR), ("mechanism", Int8), ("tags", TaggedFields))),
        (
            "upsertions",
            CompactArray(
                ("name", _CSTR),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentials(Request[AlterUserScramCredentialsRequest_v0]):
    """Upsert (name, iterations, salt, salted password) and delete (names) SCRAM-SHA-512 credentials.
    The password itself never leaves the client: only PBKDF2's output does."""

    API_KEY = 51

    def __init__(self, *, upsert: Sequence[tuple[str, int, bytes, bytes]] = (), delete: Sequence[str] = ()) -> None:
        self.upsertions: list[tuple[Any, ...]] = [(n, SCRAM_SHA_512, i, s, salted, {}) for n, i, s, salted in upsert]
        self.deletions: list[tuple[Any, ...]] = [(n, SCRAM_SHA_512, {}) for n in delete]

    def build(
        self, request_struct_class: type[AlterUserScramCredentialsRequest_v0]
    ) -> AlterUserScramCredentialsRequest_v0:
        return request_struct_class(self.deletions, self.upsertions, {})


class DescribeUserScramCredentialsResponse_v0(Response):
    API_KEY = 50
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", _CSTR),
        (
            "results",
            CompactArray(
                ("user", _CSTR),
                ("error_code", Int16),
                ("error_message", _CSTR),
                ("credential_infos", CompactArray(("mechanism", Int8), ("iterations", Int32), ("tags", TaggedFields))),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DescribeUserScramCredentialsRequest_v0(RequestStruct):
    FLEXIBLE_VERSION: ClassVar[bool] = True
    API_KEY = 50
    API_VERSION = 0
    RESPONSE_TYPE = DescribeUserScramCredentialsResponse_v0
    SCHEMA = Schema(("users", CompactArray(("name", _CSTR), ("tags", TaggedFields))), ("tags", TaggedFields))


class DescribeUserScramCredentials(Request[DescribeUserScramCredentialsRequest_v0]):
    API_KEY = 50

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def build(
        self, request_struct_class: type[DescribeUserScramCredentialsRequest_v0]
    ) -> DescribeUserScramCredentialsRequest_v0:
        return request_struct_class([(n, {}) for n in self.names], {})
