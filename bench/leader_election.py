"""bench/leader_election: two operator processes with leader election on the local stack, at the
lease timings of the environment (the defaults unless KEELSON_LEASE_* are set): the idle write
rate from the audit log, told apart by user agent, and the fail-over time after SIGKILL and
SIGTERM of the leader. The stack's single operator is stopped for the run and started again.

    python bench/leader_election.py [--state-dir DIR] [--idle-seconds 300] [--rounds 2]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from e2e.kube import Kube, eventually, operator_writes, utcnow  # noqa: E402
from keelson.devstack.stack import OPERATOR, STANDBY_OPERATOR, LocalStack  # noqa: E402
from tests.cases.invalid_platforms import workloads_example  # noqa: E402

NAMESPACE = "bench-leader-election"


def holder(kube: Kube) -> str:
    lease = kube.get("lease", "keelson-operator", "keelson-system") or {}
    return str(lease.get("spec", {}).get("holderIdentity") or "")


def idle_writes(stack: LocalStack, kube: Kube, seconds: float) -> dict[str, Any]:
    kube.run("create", "namespace", NAMESPACE, check=False)
    kube.apply(NAMESPACE, workloads_example())
    eventually(lambda: (kube.condition("shop", NAMESPACE) or {}).get("status") == "True", timeout=120, what="Ready")
    time.sleep(15)  # the first passes' follow-ups (status as pods start) settle
    since, began = utcnow(), time.monotonic()
    time.sleep(seconds)  # the idle window itself is the measurement
    elapsed = time.monotonic() - began
    writes = operator_writes(stack.audit_log, since=since)
    counted = collections.Counter(
        (w["userAgent"].rpartition("(")[2].rstrip(")"), w["verb"], w["objectRef"].get("resource", "")) for w in writes
    )
    return {
        "window_s": round(elapsed, 1),
        "writes": len(writes),
        "per_minute": round(len(writes) / elapsed * 60, 2),
        "by_identity_verb_resource": [[*key, n] for key, n in sorted(counted.items())],
    }


def fail_over(stack: LocalStack, kube: Kube, sig: signal.Signals) -> float:
    before = eventually(lambda: holder(kube), timeout=120, what="a leader")
    leader = before.rsplit("_", 1)[0]
    stack.kill_operator(sig, name=leader)
    began = time.monotonic()
    eventually(lambda: holder(kube) not in ("", before), timeout=180, interval=0.2, what="a take-over")
    taken = time.monotonic() - began
    eventually(lambda: not stack.operator_alive(name=leader), timeout=30, what=f"{leader} to exit")
    stack.start_operator(name=leader)
    return round(taken, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("KEELSON_E2E_STATE_DIR", "/tmp/keelson")))
    parser.add_argument("--idle-seconds", type=float, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    stack = LocalStack(args.state_dir)
    kube = Kube(stack.admin_kubeconfig)
    stack.stop_operator()
    os.environ["KEELSON_LEADER_ELECTION"] = "true"  # the operators' environment is ours
    result: dict[str, Any] = {}
    try:
        stack.start_operator(name=OPERATOR)
        stack.start_operator(name=STANDBY_OPERATOR)
        result["idle"] = idle_writes(stack, kube, args.idle_seconds)
        for sig in (signal.SIGKILL, signal.SIGTERM) * args.rounds:
            result.setdefault(sig.name, []).append(fail_over(stack, kube, sig))
    finally:
        for name in (OPERATOR, STANDBY_OPERATOR):
            stack.stop_operator(name=name)
        del os.environ["KEELSON_LEADER_ELECTION"]
        stack.start_operator()
        kube.run("delete", "namespace", NAMESPACE, "--wait=false", check=False)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
