"""The Helm chart: it lints, refuses bad values naming the field, renders a restricted operator
Deployment of two replicas with leader election and the generated CRD, installs into the stack's
API server with default and varied values (and uninstalls without taking the CRD, or the
platforms, along), and its RBAC has no wildcards and, in namespaced mode, nothing cluster-wide but
discovery. That its rules are exactly what the operator uses is proven from the audit log:
e2e/test_zz_least_privilege.py. The operator's check of the installed CRD runs here too, against
the real API server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from e2e import helm
from e2e.kube import Kube, eventually
from keelson.api.crd import (
    CRD_NAME,
    DEFINITION_CRD_NAME,
    SCHEMA_DIGEST_ANNOTATION,
    custom_resource_definition,
    definition_crd,
    platform_service_crd,
)
from keelson.controller.crdcheck import CRD_CURRENT, MISMATCH_REASON
from keelson.devstack.stack import LocalStack
from tests.cases.invalid_platforms import workloads_example

pytestmark = pytest.mark.cluster

KEEP = "helm.sh/resource-policy"
VARIED = {
    "operator.workers": "2",
    "operator.resyncSeconds": "30",
    "operator.logLevel": "debug",
    "operator.watchNamespaces[0]": "keelson-system",  # a namespace that exists (its Role goes there)
    "operator.resources.requests.cpu": "250m",
    "operator.resources.limits.memory": "1Gi",
    "referenceImage.tag": "0.1.1",
    "nodeSelector.type": "kwok",
    "tolerations[0].key": "dedicated",
    "tolerations[0].operator": "Equal",
    "tolerations[0].value": "operators",
    "tolerations[0].effect": "NoSchedule",
    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
    ".matchExpressions[0].key": "kubernetes.io/os",
    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
    ".matchExpressions[0].operator": "In",
    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
    ".matchExpressions[0].values[0]": "linux",
    "priorityClassName": "keelson-e2e-critical",
    "imagePullSecrets[0].name": "regcred",
    "podAnnotations.example\\.com/team": "platform",
}


def _rendered(*sets: str) -> list[dict[str, Any]]:
    """The chart rendered with `--set` arguments (e2e/test_monitoring.py renders it through this)."""
    return helm.render(values=dict(value.split("=", 1) for value in sets))


def test_chart_lints(stack: LocalStack) -> None:
    helm.helm("lint", str(helm.CHART), "--strict")
    helm.helm("lint", str(helm.CHART), "--strict", *helm.sets(VARIED))


@pytest.mark.parametrize(
    ("value", "field", "says"),
    [
        ("operator.workers=0", "/operator/workers", "minimum"),
        ("operator.resyncSeconds=soon", "/operator/resyncSeconds", "want integer"),
        ("operator.resources.limits.memory=lots", "/operator/resources/limits/memory", "does not match pattern"),
        ("operator.resources.request.cpu=1", "/operator/resources", "'request' not allowed"),
        ("tolerations[0].effect=Sometimes", "/tolerations/0/effect", "NoSchedule"),
        ("affinity.nodeAfinity.x=1", "/affinity", "'nodeAfinity' not allowed"),
        ("priorityClassName=Critical_Ops", "/priorityClassName", "does not match pattern"),
        ("imagePullSecrets[0].nam=regcred", "/imagePullSecrets/0", "missing property 'name'"),
        ("podAnnotations.team=7", "/podAnnotations/team", "want string"),
        ("nodeSelector.disk=true", "/nodeSelector/disk", "want string"),
        ("referenceImage.tag=latest tag", "/referenceImage/tag", "does not match pattern"),
        # Keys another branch adds (replicas, leader election): their schema is here already.
        ("operator.replicas=0", "/operator/replicas", "minimum"),
        ("operator.leaderElection.leaseDurationSeconds=0", "/operator/leaderElection/leaseDurationSeconds", "minimum"),
    ],
)
def test_a_bad_value_is_refused_naming_the_field(stack: LocalStack, value: str, field: str, says: str) -> None:
    for command in (["template", helm.RELEASE], ["lint", "--strict"]):
        proc = helm.helm(*command, str(helm.CHART), "--set", value, check=False)
        assert proc.returncode != 0, f"helm {command[0]} accepted {value}"
        output = proc.stderr + proc.stdout
        assert f"at '{field}'" in output and says in output, output


def test_values_reach_the_operator_pod(stack: LocalStack) -> None:
    pod = helm.deployment(helm.render(values=VARIED))["spec"]["template"]["spec"]
    env = helm.container_env(pod)
    assert env["KEELSON_WORKERS"] == "2" and env["KEELSON_RESYNC_SECONDS"] == "30"
    assert env["KEELSON_LOG_LEVEL"] == "debug"
    assert env["KEELSON_REFERENCE_IMAGE"] == "ghcr.io/keelson-dev/keelson:0.1.1"
    container = pod["containers"][0]
    assert "--namespace=keelson-system" in container["args"]
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}}
    assert pod["nodeSelector"] == {"type": "kwok"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "operators", "effect": "NoSchedule"}
    ]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]
    assert pod["priorityClassName"] == "keelson-e2e-critical"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    annotations = helm.deployment(helm.render(values=VARIED))["spec"]["template"]["metadata"]["annotations"]
    assert annotations["example.com/team"] == "platform"


def test_the_reference_image_is_pinned_apart_from_the_operator_image(stack: LocalStack) -> None:
    # Upgrading the operator (a new image tag) must not roll every platform's Deployments.
    for tag in ("", "0.2.0", "0.3.0"):
        env = helm.container_env(helm.deployment(helm.render(values={"image.tag": tag}))["spec"]["template"]["spec"])
        assert env["KEELSON_REFERENCE_IMAGE"] == "ghcr.io/keelson-dev/keelson:0.1.0"


def test_the_crd_templates_are_the_generated_crds(stack: LocalStack) -> None:
    crds = {d["metadata"]["name"]: d for d in helm.render() if d["kind"] == "CustomResourceDefinition"}
    assert set(crds) == {CRD_NAME, DEFINITION_CRD_NAME, "platformservices.keelson.dev"}
    for generated in (custom_resource_definition(), definition_crd(), platform_service_crd()):
        crd = crds[generated["metadata"]["name"]]
        assert crd["spec"] == generated["spec"]
        annotations = crd["metadata"]["annotations"]
        assert annotations[SCHEMA_DIGEST_ANNOTATION] == generated["metadata"]["annotations"][SCHEMA_DIGEST_ANNOTATION]
        assert annotations[KEEP] == "keep"  # uninstall never deletes the platforms or the definitions
        assert crd["metadata"]["labels"]["app.kubernetes.io/name"] == "keelson-operator"
    assert not [d for d in helm.render(values={"crds.enabled": "false"}) if d["kind"] == "CustomResourceDefinition"]
    unkept = [d for d in helm.render(values={"crds.keep": "false"}) if d["kind"] == "CustomResourceDefinition"]
    assert len(unkept) == 3 and all(KEEP not in d["metadata"]["annotations"] for d in unkept)
    # Helm would install crds/ once and never upgrade it: the chart has none.
    assert not (helm.CHART / "crds").exists()


def test_the_chart_installs_the_webhook_with_its_certificate(stack: LocalStack) -> None:
    docs = helm.render()
    by_kind = {d["kind"]: d for d in docs if d["kind"] in ("Secret", "Service", "ValidatingWebhookConfiguration")}
    secret, service, config = by_kind["Secret"], by_kind["Service"], by_kind["ValidatingWebhookConfiguration"]
    assert secret["type"] == "kubernetes.io/tls" and {"tls.crt", "tls.key", "ca.crt"} <= set(secret["data"])
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "keelson-operator"}
    hooks = {h["name"]: h for h in config["webhooks"]}
    assert set(hooks) == {"platforms.keelson.dev", "componentdefinitions.keelson.dev"}
    for hook in hooks.values():
        assert hook["failurePolicy"] == "Ignore" and hook["timeoutSeconds"] == 5 and hook["sideEffects"] == "None"
        assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
        assert hook["clientConfig"]["service"]["name"] == service["metadata"]["name"]
    assert hooks["componentdefinitions.keelson.dev"]["rules"][0]["operations"] == ["CREATE", "UPDATE", "DELETE"]
    assert hooks["platforms.keelson.dev"]["clientConfig"]["service"]["path"] == "/platforms"
    pod = helm.deployment(docs)["spec"]["template"]["spec"]
    env = helm.container_env(pod)
    assert env["KEELSON_WEBHOOK_CERT"] == "/etc/keelson/webhook/tls.crt" and env["KEELSON_WEBHOOK_PORT"] == "9443"
    assert pod["volumes"] == [{"name": "webhook-tls", "secret": {"secretName": secret["metadata"]["name"]}}]
    # The dev stack's shape: a URL on loopback with its CA, and neither Secret nor Service.
    url = helm.render(
        values={"operator.deploy": "false", "webhook.url": "https://127.0.0.1:9", "webhook.caBundle": "PEM"}
    )
    assert not [d for d in url if d["kind"] in ("Secret", "Service")]
    (config,) = [d for d in url if d["kind"] == "ValidatingWebhookConfiguration"]
    assert config["webhooks"][0]["clientConfig"] == {"url": "https://127.0.0.1:9/platforms", "caBundle": "UEVN"}
    off = helm.render(values={"webhook.enabled": "false"})
    assert not [d for d in off if d["kind"] in ("ValidatingWebhookConfiguration", "Secret", "Service")]
    assert "KEELSON_WEBHOOK_CERT" not in helm.container_env(helm.deployment(off)["spec"]["template"]["spec"])


def test_operator_deployment_is_restricted(stack: LocalStack) -> None:
    dep = helm.deployment(helm.render())
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "keelson-operator" and pod["securityContext"]["runAsNonRoot"]
    container = pod["containers"][0]
    assert container["args"][:2] == ["operator", "run"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert not [d for d in helm.render(values={"operator.deploy": "false"}) if d["kind"] == "Deployment"]


def test_two_replicas_one_leader(stack: LocalStack) -> None:
    docs = _rendered()
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    # Surged, never down to zero: the new pod is a ready standby before an old one goes.
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert "--leader-elect" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert {env[k]["value"] for k in env if k.startswith("KEELSON_LEASE_")} == {"60", "40", "15"}
    # Distinct probes: liveness is kopf's, readiness ("could lead") is true on a standby too.
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    (pdb,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == dep["spec"]["selector"]


def test_lease_permissions_are_only_what_the_elector_uses(stack: LocalStack) -> None:
    for sets in ((), ("operator.deploy=false",)):  # the local stack installs the chart without the Deployment
        docs = _rendered(*sets)
        (role,) = [d for d in docs if d["kind"] == "Role"]
        (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
        assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "keelson-system"
        rules = {(tuple(r["verbs"]), tuple(r.get("resourceNames", ()))) for r in role["rules"]}
        assert rules == {(("create",), ()), (("get", "update", "watch"), ("keelson-operator",))}
        assert all(r["apiGroups"] == ["coordination.k8s.io"] and r["resources"] == ["leases"] for r in role["rules"])
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "keelson-operator", "namespace": "keelson-system"}
        ]


def _live_operator_pod(kube: Kube) -> dict[str, Any]:
    dep = kube.get("deployment", "keelson-operator", helm.NAMESPACE)
    assert dep is not None and dep["status"].get("availableReplicas") == dep["spec"]["replicas"], dep and dep["status"]
    return dict(dep["spec"]["template"]["spec"])


def test_helm_install_with_default_values_and_uninstall_keeps_the_platforms(
    stack: LocalStack, kube: Kube, namespace: str
) -> None:
    with helm.release(stack):
        pod = _live_operator_pod(kube)  # --wait: scheduled on a kwok node and available
        assert helm.container_env(pod)["KEELSON_WORKERS"] == "4"
        crd = kube.get("crd", CRD_NAME, "")
        assert crd is not None and crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == helm.RELEASE
        kube.apply(namespace, workloads_example())
        helm.helm("uninstall", helm.RELEASE, "-n", helm.NAMESPACE, "--wait", kubeconfig=stack.admin_kubeconfig)
        # The CRD is kept (helm.sh/resource-policy), so is every platform; the RBAC went with the release.
        assert kube.get("crd", CRD_NAME, "") is not None
        assert kube.get("msp", "shop", namespace) is not None
        assert kube.get("clusterrole", "keelson-operator", "") is None


def test_helm_install_with_varied_values(stack: LocalStack, kube: Kube) -> None:
    priority_class = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                      "metadata": {"name": "keelson-e2e-critical"}, "value": 1000000}  # fmt: skip
    kube.run("apply", "-f", "-", stdin=json.dumps(priority_class))
    try:
        with helm.release(stack, values=VARIED):
            pod = _live_operator_pod(kube)
            assert pod["priorityClassName"] == "keelson-e2e-critical" and pod["nodeSelector"] == {"type": "kwok"}
            assert helm.container_env(pod)["KEELSON_RESYNC_SECONDS"] == "30"
            assert helm.operator_pod(kube, replicas=2)["spec"].get("priority") == 1000000  # admitted with its class
    finally:
        kube.run("delete", "priorityclass", "keelson-e2e-critical", check=False)


def _crd_condition(kube: Kube, namespace: str) -> dict[str, Any] | None:
    return kube.condition("shop", namespace, CRD_CURRENT)


def test_the_operator_checks_the_installed_crd(stack: LocalStack, kube: Kube, namespace: str) -> None:
    """A match (the stack installed the chart's CRD) says so and adds no condition; a mismatch is
    logged at start and reported on the platforms; an upgraded CRD is noticed on the next resync."""
    log = stack.log_path("operator")
    stack.stop_operator()
    start = log.stat().st_size if log.exists() else 0
    stack.start_operator()
    eventually(lambda: "matches this operator" in log.read_text()[start:], timeout=30, what="the match logged")
    kube.apply(namespace, workloads_example())
    eventually(lambda: (kube.condition("shop", namespace) or {}).get("status") == "True", timeout=120, what="Ready")
    assert _crd_condition(kube, namespace) is None

    digest = f"{SCHEMA_DIGEST_ANNOTATION}=sha256:{'0' * 64}"
    current = custom_resource_definition()["metadata"]["annotations"][SCHEMA_DIGEST_ANNOTATION]
    try:
        stack.stop_operator()
        kube.run("annotate", "crd", CRD_NAME, digest, "--overwrite")
        start = log.stat().st_size
        stack.start_operator()
        stale = eventually(lambda: _crd_condition(kube, namespace), timeout=60, what="condition CRDCurrent")
        assert stale["status"] == "False" and stale["reason"] == MISMATCH_REASON
        assert current in stale["message"] and "0" * 64 in stale["message"]
        # Reported, outside Ready: the platform still converges.
        assert (kube.condition("shop", namespace) or {}).get("status") == "True"
        lines = [json.loads(line) for line in log.read_text()[start:].splitlines() if line.startswith("{")]
        errors = [line["message"] for line in lines if line.get("severity") == "error"]
        assert any(CRD_NAME in message and current in message for message in errors), lines[-10:]
    finally:
        kube.run("annotate", "crd", CRD_NAME, f"{SCHEMA_DIGEST_ANNOTATION}={current}", "--overwrite")
    # The CRD upgraded under a running operator: the next resync's check clears the condition.
    eventually(lambda: _crd_condition(kube, namespace) is None, timeout=60, what="CRDCurrent gone")


def _rules(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(verb, group, resource) of the resource rules; nonResourceURLs rules are `_paths`'."""
    return [
        (v, g, r)
        for rule in doc["rules"]
        if "nonResourceURLs" not in rule
        for v in rule["verbs"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    ]


def _paths(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(v, url) for rule in doc["rules"] for v in rule["verbs"] for url in rule.get("nonResourceURLs", [])}


def test_rbac_has_no_wildcards_and_never_writes_a_platforms_spec(stack: LocalStack) -> None:
    # Whether each rule is needed, and enough, is proven from the audit log of the whole cluster
    # suite: e2e/test_zz_least_privilege.py. This is what must hold whatever the operator uses.
    for sets in ((), ("operator.watchNamespaces={a,b}",)):
        for role in (d for d in _rendered(*sets) if d["kind"] in ("Role", "ClusterRole")):
            rules = _rules(role)
            assert not [r for r in rules if "*" in r], role["metadata"]
            # Finalizers are patched; spec is the user's (or Git's), never written by the operator.
            platform_verbs = {v for v, _, r in rules if r == "microserviceplatforms"}
            assert platform_verbs <= {"list", "watch", "patch"}, role["metadata"]


def test_namespaced_mode_grants_nothing_cluster_wide_but_discovery(stack: LocalStack) -> None:
    docs = _rendered("operator.watchNamespaces={a,b}")
    (cluster_role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert {(g, r) for _, g, r in _rules(cluster_role)} == {
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("", "namespaces"),
        ("keelson.dev", "componentdefinitions"),  # cluster-scoped: the published definitions
    }
    # Reads only: list and watch, and get of Keelson's own CRD alone (its schema check).
    named = [r for r in cluster_role["rules"] if r.get("resourceNames")]
    assert named == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "resourceNames": [CRD_NAME],
            "verbs": ["get"],
        }
    ]
    assert {v for r in cluster_role["rules"] if r not in named for v in r["verbs"]} == {"list", "watch", "get"}
    # And, to read, the cluster's service-account issuer (render/callers.py).
    assert _paths(cluster_role) == {("get", "/.well-known/openid-configuration"), ("get", "/openid/v1/jwks")}
    # The platforms' Roles (the Lease's, in the release's namespace, is leader election's).
    roles = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "Role" and "lease" not in str(d["rules"])}
    bindings = {
        d["metadata"]["namespace"] for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] in "ab"
    }
    assert set(roles) == bindings == {"a", "b"}
    # The same rules as cluster mode's, less the cluster-scoped ones.
    (cluster_mode,) = [d for d in _rendered() if d["kind"] == "ClusterRole"]
    cluster_scoped = ("customresourcedefinitions", "componentdefinitions", "namespaces")
    namespaced = {r for r in _rules(cluster_mode) if r[2] not in cluster_scoped}
    assert set(_rules(roles["a"])) == namespaced
