"""The comparison behind e2e/test_zz_least_privilege.py: grants from rendered RBAC, uses from audit
events, and each side's surplus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from e2e.permissions import CLUSTER, NON_RESOURCE, Grant, Use, denial, granted, ungranted, unused, usage

SA = {"kind": "ServiceAccount", "name": "op", "namespace": "sys"}
USER = "system:serviceaccount:sys:op"
LEASES = [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]}]


def _role(kind: str, name: str, rules: list[dict[str, Any]], namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"kind": kind, "metadata": meta, "rules": rules}


def _binding(kind: str, role_kind: str, role: str, namespace: str | None = None, subject: Any = SA) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": role}
    if namespace:
        meta["namespace"] = namespace
    return {"kind": kind, "metadata": meta, "roleRef": {"kind": role_kind, "name": role}, "subjects": [subject]}


def test_grants_of_every_role_bound_to_the_account_with_its_scope() -> None:
    docs = [
        _role("ClusterRole", "op", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]}]),
        _binding("ClusterRoleBinding", "ClusterRole", "op"),
        _role("Role", "lease", LEASES, "sys"),
        _binding("RoleBinding", "Role", "lease", "sys"),
        # Bound to someone else: not the operator's.
        _role("ClusterRole", "other", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
        _binding("ClusterRoleBinding", "ClusterRole", "other", subject={"kind": "User", "name": "op"}),
    ]
    assert granted(docs, namespace="sys", name="op") == {
        Grant("list", "", "secrets"),
        Grant("watch", "", "secrets"),
        Grant("get", "coordination.k8s.io", "leases", "sys"),
    }


def test_a_surplus_and_a_lack_are_both_found() -> None:
    grants = [Grant("get", "", "secrets"), Grant("delete", "", "secrets"), Grant("get", "", "configmaps", "a")]
    uses = [Use("get", "", "secrets", "x"), Use("get", "", "configmaps", "b"), Use("list", "", "secrets")]
    assert unused(grants, uses) == [Grant("delete", "", "secrets"), Grant("get", "", "configmaps", "a")]
    assert ungranted(grants, uses) == [Use("get", "", "configmaps", "b"), Use("list", "", "secrets")]


def test_resource_names_restrict_named_verbs_only() -> None:
    lease = Grant("update", "coordination.k8s.io", "leases", "sys", ("keelson",))
    assert lease.covers(Use("update", "coordination.k8s.io", "leases", "sys", "keelson"))
    assert not lease.covers(Use("update", "coordination.k8s.io", "leases", "sys", "other"))
    named_create = Grant("create", "coordination.k8s.io", "leases", "sys", ("keelson",))
    assert not named_create.covers(Use("create", "coordination.k8s.io", "leases", "sys", "keelson"))


def _event(user: str, verb: str, ref: dict[str, str], *, when: str, decision: str = "allow", **extra: Any) -> str:
    event = {
        "stage": "ResponseComplete",
        "verb": verb,
        "requestURI": "/x",
        "user": {"username": user},
        "userAgent": "kopf/1",
        "objectRef": ref,
        "requestReceivedTimestamp": when,
        "annotations": {"authorization.k8s.io/decision": decision},
        **extra,
    }
    return json.dumps(event)


def test_usage_reads_one_account_in_the_window_any_agent_and_reports_denials(tmp_path: Path) -> None:
    secrets = {"resource": "secrets", "namespace": "a", "name": "s"}
    lines = [
        _event(USER, "get", secrets, when="2026-01-01T00:00:00Z"),  # before the window
        _event(USER, "list", {"resource": "secrets"}, when="2026-01-01T00:00:02Z", userAgent="second"),
        _event("admin", "delete", secrets, when="2026-01-01T00:00:03Z"),
        _event(USER, "get", {"resource": "leases", "apiGroup": "coordination.k8s.io"}, when="2026-01-01T00:00:04Z"),
        _event(USER, "create", {"resource": "nodes"}, when="2026-01-01T00:00:05Z", decision="forbid"),
        json.dumps(
            {
                "user": {"username": USER},
                "verb": "get",
                "requestURI": "/openid/v1/jwks?x=1",
                "requestReceivedTimestamp": "2026-01-01T00:00:06Z",
            }
        ),
    ]
    (tmp_path / "audit-2026.log").write_text(lines[0] + "\n" + lines[1] + "\n")
    (tmp_path / "audit.log").write_text("\n".join(lines[2:]) + "\n")
    found = usage(tmp_path / "audit.log", user=USER, since="2026-01-01T00:00:01Z")
    jwks = Use("get", NON_RESOURCE, "/openid/v1/jwks", CLUSTER)  # a non-resource request: its path
    assert found.uses == {
        Use("list", "", "secrets", CLUSTER),
        Use("get", "coordination.k8s.io", "leases", CLUSTER),
        jwks,
    }
    assert [e["verb"] for e in found.denied] == ["create"]
    assert found.oldest == "2026-01-01T00:00:00Z"
    # Granted by nonResourceURLs, or nobody's to grant (discovery): never reported as lacking.
    granted = Grant("get", NON_RESOURCE, "/openid/v1/jwks")
    assert granted.covers(jwks) and not unused([granted], found.uses)
    assert ungranted([], [jwks, Use("get", NON_RESOURCE, "/version")]) == []
    assert unused([Grant("get", NON_RESOURCE, "/.well-known/openid-configuration")], found.uses)


def test_a_patch_that_creates_needs_create_and_its_refusal_inside_the_handler_is_a_denial(tmp_path: Path) -> None:
    ref = {"resource": "configmaps", "namespace": "a", "name": "c"}
    refusal = 'configmaps "c" is forbidden: User "system:serviceaccount:sys:op" cannot create resource "configmaps"'
    terminating = (
        'configmaps "c" is forbidden: unable to create new content in namespace a because it is being terminated'
    )
    lines = [
        _event(USER, "patch", ref, when="2026-01-01T00:00:01Z", responseStatus={"code": 201}),
        _event(USER, "patch", ref, when="2026-01-01T00:00:02Z", responseStatus={"code": 403, "message": refusal}),
        _event(USER, "patch", ref, when="2026-01-01T00:00:03Z", responseStatus={"code": 403, "message": terminating}),
    ]
    (tmp_path / "audit.log").write_text("\n".join(lines) + "\n")
    found = usage(tmp_path / "audit.log", user=USER, since="2026-01-01T00:00:00Z")
    assert found.uses == {Use("patch", "", "configmaps", "a", "c"), Use("create", "", "configmaps", "a", "c")}
    assert [e["requestReceivedTimestamp"] for e in found.denied] == ["2026-01-01T00:00:02Z"]
    assert "create refused" in denial(found.denied[0])


def test_a_refusal_is_transient_only_when_the_same_permission_is_allowed_later(tmp_path: Path) -> None:
    watch = {"resource": "configmaps"}
    lines = [
        _event(USER, "watch", watch, when="2026-01-01T00:00:01Z", decision="forbid"),  # apiserver warming up
        _event(USER, "watch", watch, when="2026-01-01T00:00:02Z"),
        _event(USER, "create", {"resource": "nodes"}, when="2026-01-01T00:00:03Z", decision="forbid"),
        _event(USER, "watch", watch, when="2026-01-01T00:00:04Z", decision="forbid"),  # never allowed again
    ]
    (tmp_path / "audit.log").write_text("\n".join(lines) + "\n")
    found = usage(tmp_path / "audit.log", user=USER, since="2026-01-01T00:00:00Z")
    assert [found.retried(e) for e in found.denied] == [True, False, False]


def test_a_watch_of_one_named_object_is_covered_by_a_grant_of_that_name() -> None:
    lease = Grant("watch", "coordination.k8s.io", "leases", "sys", ("keelson-operator",))
    assert lease.covers(Use("watch", "coordination.k8s.io", "leases", "sys", "keelson-operator"))
    assert not lease.covers(Use("watch", "coordination.k8s.io", "leases", "sys", ""))  # every Lease
    assert not lease.covers(Use("watch", "coordination.k8s.io", "leases", "sys", "another"))
    assert not Grant("create", "", "configmaps", "sys", ("x",)).covers(Use("create", "", "configmaps", "sys", "x"))
