"""Permissions, both ways: what a chart grants a ServiceAccount (every Role and ClusterRole bound
to it in the output of `helm template`), what the API server's audit log shows it used, and the
difference. Pure functions of the rendered documents and the audit events, so the comparison
itself is unit-tested (tests/unit/test_permissions.py) without a cluster.

A permission is (verb, API group, resource[/subresource], scope). A grant's scope is CLUSTER for
a ClusterRoleBinding, or the namespace of a RoleBinding; a use's is the request's namespace, or
CLUSTER for a request across all namespaces or on a cluster-scoped resource.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

CLUSTER = ""
# The "group" of a non-resource URL (`nonResourceURLs` rules; the resource is the path).
NON_RESOURCE = "<nonResourceURL>"
# RBAC cannot restrict these by resourceNames: the request carries no name (create) or asks for
# every name (list, watch, deletecollection), unless a list or watch selects one object by
# `fieldSelector=metadata.name=...`: the API server then authorizes (and audits) it with that name,
# as the leader election's watch of its Lease does.
NAMELESS_VERBS = {"create", "list", "watch", "deletecollection"}
SINGLE_NAME_VERBS = {"list", "watch"}
# RBAC's verdict on the request's own verb, in the audit event.
DECISION = "authorization.k8s.io/decision"
# How the API server words a refusal of RBAC's: `User "..." cannot create resource "configmaps" ...`.
_RBAC_REFUSAL = re.compile(r'User "[^"]*" cannot (\w+) resource "')


def account(namespace: str, name: str) -> str:
    """The user name a ServiceAccount's requests carry in the audit log."""
    return f"system:serviceaccount:{namespace}:{name}"


@dataclass(frozen=True, order=True)
class Use:
    verb: str
    group: str
    resource: str
    namespace: str = CLUSTER
    name: str = ""

    @property
    def scope(self) -> str:
        return "cluster-wide" if self.namespace == CLUSTER else "namespaced"

    def summary(self) -> tuple[str, str, str, str]:
        """What the brief's tables list: the namespace and name are too fine to compare runs by."""
        return (self.verb, self.group, self.resource, self.scope)


@dataclass(frozen=True, order=True)
class Grant:
    verb: str
    group: str
    resource: str
    scope: str = CLUSTER
    names: tuple[str, ...] = ()

    def covers(self, use: Use) -> bool:
        if not all(mine in ("*", theirs) for mine, theirs in self._key_against(use)):
            return False
        if self.scope not in (CLUSTER, use.namespace):
            return False
        if not self.names:
            return True
        named = use.verb not in NAMELESS_VERBS or (use.verb in SINGLE_NAME_VERBS and bool(use.name))
        return named and use.name in self.names

    def _key_against(self, use: Use) -> Iterator[tuple[str, str]]:
        yield self.verb, use.verb
        yield self.group, use.group
        yield self.resource, use.resource

    def __str__(self) -> str:
        where = "cluster-wide" if self.scope == CLUSTER else f"in namespace {self.scope}"
        names = f" named {', '.join(self.names)}" if self.names else ""
        return f"{self.verb} {self.resource}.{self.group or 'core'} {where}{names}"


def granted(docs: Iterable[dict[str, Any]], *, namespace: str, name: str) -> set[Grant]:
    """Every grant of the chart's Roles and ClusterRoles bound to ServiceAccount namespace/name.

    ``namespace`` is also the release's namespace, where a RoleBinding without one lands."""
    docs = list(docs)
    roles = {_role_key(d, namespace): d for d in docs if d.get("kind") in ("Role", "ClusterRole")}
    grants: set[Grant] = set()
    for binding in docs:
        if binding.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        bound_in = binding["metadata"].get("namespace", namespace)
        if not any(_is_account(s, bound_in, namespace, name) for s in binding.get("subjects", [])):
            continue
        ref = binding["roleRef"]
        key = (ref["kind"], bound_in if ref["kind"] == "Role" else None, ref["name"])
        if key not in roles:
            raise AssertionError(f"{binding['kind']} {binding['metadata']['name']} binds {key}, not in the chart")
        scope = CLUSTER if binding["kind"] == "ClusterRoleBinding" else bound_in
        for rule in roles[key].get("rules", []):
            grants.update(_expand(rule, scope))
    return grants


def _role_key(doc: dict[str, Any], release_namespace: str) -> tuple[str, str | None, str]:
    meta = doc["metadata"]
    where = meta.get("namespace", release_namespace) if doc["kind"] == "Role" else None
    return (doc["kind"], where, meta["name"])


def _is_account(subject: dict[str, Any], bound_in: str, namespace: str, name: str) -> bool:
    return (
        subject.get("kind") == "ServiceAccount"
        and subject.get("name") == name
        and subject.get("namespace", bound_in) == namespace
    )


def _expand(rule: dict[str, Any], scope: str) -> Iterator[Grant]:
    if rule.get("nonResourceURLs"):
        if scope != CLUSTER or rule.get("resources"):
            raise AssertionError(f"nonResourceURLs are granted by a ClusterRoleBinding, alone in their rule: {rule}")
        for verb in rule["verbs"]:
            for url in rule["nonResourceURLs"]:
                yield Grant(verb, NON_RESOURCE, url, CLUSTER)
        return
    names = tuple(sorted(rule.get("resourceNames", [])))
    for verb in rule["verbs"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                yield Grant(verb, group, resource, scope, names)


@dataclass
class Usage:
    """One user's requests in the audit log: each distinct use, and the requests RBAC refused."""

    uses: set[Use] = field(default_factory=set)
    denied: list[dict[str, Any]] = field(default_factory=list)
    # The oldest event the log still holds: later than the window's start means rotation lost some.
    oldest: str | None = None
    # When each permission (verb, group, resource or path, scope) was last allowed: see retried().
    last_allowed: dict[tuple[str, str, str, str], str] = field(default_factory=dict)

    def retried(self, event: dict[str, Any]) -> bool:
        """Whether a refused request's permission was allowed to the account later on. Right after a
        restart the API server answers before its authorizer has read every role and binding, and
        refuses what the chart grants ("clusterrole ... not found"); a later allowed use of the same
        permission shows the refusal was that, not a lack of the chart's."""
        key = _permission_key(event, refused_verb(event) or event["verb"])
        later = self.last_allowed.get(key)
        return later is not None and later > event["requestReceivedTimestamp"]

    def note_allowed(self, event: dict[str, Any], verbs: Iterable[str]) -> None:
        when = event["requestReceivedTimestamp"]
        for verb in verbs:
            key = _permission_key(event, verb)
            self.last_allowed[key] = max(when, self.last_allowed.get(key, when))


def _permission_key(event: dict[str, Any], verb: str) -> tuple[str, str, str, str]:
    ref = event.get("objectRef")
    if not ref or "resource" not in ref:  # a non-resource request: its path
        return (verb, "", event.get("requestURI", "").split("?")[0], "")
    resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return (verb, ref.get("apiGroup", ""), resource, "namespaced" if ref.get("namespace") else "cluster-wide")


def audit_files(audit_log: Path) -> list[Path]:
    """The log and its rotated backups (``audit-<time>.log`` beside it), oldest first."""
    return [*sorted(audit_log.parent.glob(f"{audit_log.stem}-*{audit_log.suffix}")), audit_log]


def usage(audit_log: Path, *, user: str, since: str) -> Usage:
    """What ``user`` asked of the API from ``since`` (RFC 3339) on. Non-resource requests count
    as uses of their path (a chart may grant some: `nonResourceURLs`); those it does not grant
    (discovery, /version) are every authenticated user's, and `ungranted` leaves them out. A watch
    is logged when its response starts and again when it ends: both count once."""
    found = Usage()
    needle = json.dumps(user)
    for path in audit_files(audit_log):
        with path.open() as lines:
            for line in lines:
                if found.oldest is None:
                    found.oldest = json.loads(line)["requestReceivedTimestamp"]
                if needle not in line:  # cheap before parsing: the log holds everyone's requests
                    continue
                event = json.loads(line)
                if event["user"]["username"] != user or event["requestReceivedTimestamp"] < since:
                    continue
                refused = refused_verb(event)
                if refused is not None and event.get("stage") != "ResponseStarted":
                    found.denied.append(event)
                granted_uses = [u for u in uses_of(event) if u.verb != refused]
                found.uses.update(granted_uses)
                if refused is None:
                    found.note_allowed(event, [u.verb for u in granted_uses] or [event["verb"]])
    return found


def uses_of(event: dict[str, Any]) -> list[Use]:
    """The permissions one request needed. A server-side apply (patch) that creates the object,
    answered 201, is authorized as create as well: the API server checks that inside the handler,
    and refuses it with "cannot create resource" although the audit event says patch was allowed."""
    ref = event.get("objectRef")
    if not ref or "resource" not in ref:
        return [Use(event["verb"], NON_RESOURCE, event.get("requestURI", "").split("?")[0])]
    resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    use = Use(event["verb"], ref.get("apiGroup", ""), resource, ref.get("namespace", CLUSTER), ref.get("name", ""))
    if use.verb == "patch" and _code(event) == 201:
        return [use, replace(use, verb="create")]
    return [use]


def refused_verb(event: dict[str, Any]) -> str | None:
    """The verb RBAC refused this request, if it did: the request's own (decision "forbid"), or the
    create a creating patch also needs. A 403 from admission (a namespace being deleted refuses new
    objects) is no refusal of RBAC's: that permission was there."""
    if event.get("annotations", {}).get(DECISION) == "forbid":
        return str(event["verb"])
    if _code(event) == 403:
        found = _RBAC_REFUSAL.search(event.get("responseStatus", {}).get("message", ""))
        if found:
            return found.group(1)
    return None


def _code(event: dict[str, Any]) -> int | None:
    code = event.get("responseStatus", {}).get("code")
    return int(code) if code is not None else None


def ungranted(grants: Iterable[Grant], uses: Iterable[Use]) -> list[Use]:
    """Uses no grant covers (they would be refused: on a cluster they were, see Usage.denied).
    Non-resource requests the chart does not grant (discovery, /version) are every authenticated
    user's by the API server's default policy: not the chart's to grant."""
    grants = list(grants)
    return sorted(u for u in uses if u.group != NON_RESOURCE and not any(g.covers(u) for g in grants))


def unused(grants: Iterable[Grant], uses: Iterable[Use]) -> list[Grant]:
    """Grants no use needed: surplus privilege."""
    by_kind: dict[tuple[str, str, str], list[Use]] = {}
    for use in uses:
        by_kind.setdefault((use.verb, use.group, use.resource), []).append(use)
    every = [u for same in by_kind.values() for u in same]

    def candidates(grant: Grant) -> list[Use]:
        if "*" in (grant.verb, grant.group, grant.resource):
            return every
        return by_kind.get((grant.verb, grant.group, grant.resource), [])

    return sorted(g for g in grants if not any(g.covers(u) for u in candidates(g)))


def denial(event: dict[str, Any]) -> str:
    """One refused request, as a person reads it."""
    why = event.get("responseStatus", {}).get("message") or event.get("annotations", {}).get(
        "authorization.k8s.io/reason", ""
    )
    return (
        f"{event['requestReceivedTimestamp']} {event['verb']} {event['requestURI']} "
        f"({event.get('userAgent', '?')}): {refused_verb(event)} refused: {why}"
    )


def table(uses: Iterable[Use]) -> list[tuple[str, str, str, str]]:
    """(verb, group, resource, scope) of each use, once."""
    return sorted({u.summary() for u in uses})
