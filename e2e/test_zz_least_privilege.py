"""Least privilege, proven: every request the operator's ServiceAccount made during this session, read
from the API server's audit log, against every Role and ClusterRole the chart binds to it.

A use the chart lacks fails (and RBAC's refusals are listed request by request), and so does a
permission no request needed; the latter only when the whole cluster suite ran, since a subset
exercises a subset. It judges the ServiceAccount, whatever process or user agent spoke for it
(the stack's operator, a second one for leader election). It runs after every other test: its
module sorts last, and e2e/conftest.py moves it to the end whatever the order of the arguments.
The table of uses is written to <state>/least-privilege.txt.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from e2e import permissions
from e2e.kube import utcnow
from keelson.devstack import cluster
from keelson.devstack.building import binary_paths
from keelson.devstack.controlplane import AUDIT_LOG_MAX_BACKUPS
from keelson.devstack.stack import LocalStack, default_chart
from keelson.devstack.versions import KUBERNETES_VERSION

pytestmark = pytest.mark.cluster

# Collection imports every test module before the first test runs, so the session's window
# starts here: earlier sessions on a reused stack are not counted.
SESSION_STARTED = utcnow()
ROOT = Path(__file__).resolve().parents[1]


def cluster_suite() -> set[str]:
    """The node ids of every cluster test, collected afresh (as `pytest -m cluster e2e/` would)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "cluster", "-p", "no:cacheprovider", "e2e/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return {line for line in proc.stdout.splitlines() if "::" in line}


def _chart_docs() -> list[dict[str, object]]:
    # As the stack installed it (keelson.devstack.cluster.render_chart): the chart's defaults.
    rendered = cluster.render_chart(binary_paths()["helm"], default_chart(), KUBERNETES_VERSION)
    return [d for d in yaml.safe_load_all(rendered) if isinstance(d, dict)]


def _report(path: Path, found: permissions.Usage, grants: set[permissions.Grant]) -> None:
    lines = [f"uses by {permissions.account(cluster.KEELSON_NAMESPACE, cluster.OPERATOR_SERVICE_ACCOUNT)}"]
    lines += [" ".join(row) for row in permissions.table(found.uses)]
    lines += ["", "grants"] + [str(g) for g in sorted(grants)]
    lines += ["", "refused by RBAC"] + [permissions.denial(e) for e in found.denied if not found.retried(e)]
    lines += ["", "refused by RBAC, allowed later (the API server's RBAC not ready yet after a restart)"]
    lines += [permissions.denial(e) for e in found.denied if found.retried(e)]
    path.write_text("\n".join(lines) + "\n")


def _lacking(uses: list[permissions.Use]) -> list[str]:
    """One line per (verb, group, resource, scope), with how often and one request's object."""
    first: dict[tuple[str, str, str, str], permissions.Use] = {}
    count: dict[tuple[str, str, str, str], int] = {}
    for use in uses:
        first.setdefault(use.summary(), use)
        count[use.summary()] = count.get(use.summary(), 0) + 1
    return [
        f"{verb} {resource}.{group or 'core'} {scope}: {count[key]} objects, e.g. "
        f"{first[key].namespace or '(cluster)'}/{first[key].name}"
        for key in sorted(first)
        for verb, group, resource, scope in [key]
    ]


def test_operator_uses_exactly_what_the_chart_grants(stack: LocalStack, request: pytest.FixtureRequest) -> None:
    grants = permissions.granted(
        _chart_docs(), namespace=cluster.KEELSON_NAMESPACE, name=cluster.OPERATOR_SERVICE_ACCOUNT
    )
    user = permissions.account(cluster.KEELSON_NAMESPACE, cluster.OPERATOR_SERVICE_ACCOUNT)
    found = permissions.usage(stack.audit_log, user=user, since=SESSION_STARTED)
    _report(stack.state_dir / "least-privilege.txt", found, grants)
    assert found.uses, f"no request by {user} in {stack.audit_log} since {SESSION_STARTED}"

    lacking = permissions.ungranted(grants, found.uses)
    # Refused only while the API server's RBAC caught up after a restart (e2e/test_operator.py
    # restarts it): the same permission was allowed later. Listed in the report, not a lack.
    refused = [permissions.denial(e) for e in found.denied if not found.retried(e)]
    assert not refused and not lacking, "uses the chart lacks:\n" + "\n".join(refused + _lacking(lacking))

    ran = {item.nodeid for item in request.session.items}
    missing = sorted(cluster_suite() - ran)
    if missing:
        pytest.skip(
            f"checked only that every use is granted: {len(missing)} cluster tests did not run in this "
            f"session (e.g. {missing[0]}), so an unused permission proves nothing"
        )
    # Rotation (200 MB a file) drops the oldest backup once there are AUDIT_LOG_MAX_BACKUPS: if
    # that held the session's first requests, "unused" is unknowable. (A stack created by this
    # session starts its log after SESSION_STARTED too, with fewer backups: nothing lost.)
    backups = len(permissions.audit_files(stack.audit_log)) - 1
    assert backups < AUDIT_LOG_MAX_BACKUPS or (found.oldest or "") <= SESSION_STARTED, (
        f"the audit log starts at {found.oldest}, after this session began ({SESSION_STARTED}), and "
        f"{backups} rotated files are all the API server keeps: raise AUDIT_LOG_MAX_BACKUPS"
    )
    surplus = permissions.unused(grants, found.uses)
    assert not surplus, "granted but never used in the whole cluster suite:\n" + "\n".join(map(str, surplus))
