"""The objects of the services' components (`ComponentDefinition`s), and what they give the
services: environment variables and network edges.

A definition's templates run in the sandbox of `keelson.components.templating`; what they make is
then held to the definition's contract before anything is applied: only its `allowedKinds` (all
namespaced, in the API version the operator writes them in), only in the platform's namespace
(a template that names another namespace is refused, one that names none is placed there), and
only under the component's name (`<service>-<component>` or `<service>-<component>-...`), so two
components or a component and a service can never claim one object. Keelson's labels go on every
object and pod template: the platform's (so the default-deny policy holds its pods too) and
`keelson.dev/component`, which its NetworkPolicy edges select.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from keelson.api.components import COMPONENT_KINDS
from keelson.api.v1alpha1 import EgressRule
from keelson.components.resolve import ComponentProblems, ResolvedComponent
from keelson.components.templating import Renderer, TemplateError, load_objects
from keelson.effective import EffectiveService
from keelson.render.context import RenderContext
from keelson.render.labels import PLATFORM_LABEL, PLATFORM_NAMESPACE_LABEL, platform_labels

COMPONENT_LABEL = "keelson.dev/component"
COMPONENT_TYPE_LABEL = "keelson.dev/component-type"
DNS_EGRESS: dict[str, Any] = {
    "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}


def egress_rules(rules: Iterable[EgressRule]) -> list[dict[str, Any]]:
    """NetworkPolicy egress entries for declared outside connections (a component's, a service's)."""
    out = []
    for rule in rules:
        entry: dict[str, Any] = {"ports": [{"protocol": p.protocol or "TCP", "port": p.port} for p in rule.ports]}
        if rule.cidr:
            entry["to"] = [{"ipBlock": {"cidr": rule.cidr}}]
        out.append(entry)
    return out


def component_selector(ctx: RenderContext, component: ResolvedComponent) -> dict[str, str]:
    return {PLATFORM_LABEL: ctx.name, COMPONENT_LABEL: component.fullname}


def template_variables(ctx: RenderContext, component: ResolvedComponent) -> dict[str, Any]:
    """What a template sees: its parameters and the facts of where it is used, nothing else."""
    svc = ctx.service(component.service)
    return {
        "parameters": dict(component.parameters),
        "fullname": component.fullname,
        "component": {"name": component.name, "type": component.definition.type, "version": component.version},
        "service": {"name": svc.name, "image": svc.image or ctx.reference_image, "port": svc.port},
        "platform": {"name": ctx.name, "namespace": ctx.namespace, "domain": ctx.spec.domain},
        # Where the component's objects live: the service's namespace (a team's, for a service a
        # PlatformService attached; the platform's otherwise).
        "namespace": ctx.namespace_of(svc.name),
        "labels": component_selector(ctx, component),
    }


def _pod_templates(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if obj["kind"] == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec")
        if not isinstance(spec, dict):
            return
    template = spec.get("template")
    if isinstance(template, dict):
        yield template


def _checked(ctx: RenderContext, component: ResolvedComponent, where: str, obj: Any) -> dict[str, Any]:
    """The object as the contract allows it, with Keelson's labels; TemplateError otherwise."""
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        raise TemplateError(f"{where}: not a Kubernetes object (apiVersion, kind, metadata)")
    kind, name = obj.get("kind"), obj["metadata"].get("name")
    allowed = component.definition.allowedKinds
    if kind not in allowed:
        raise TemplateError(f"{where}: kind {kind} is not allowed (allowedKinds: {', '.join(allowed)})")
    if obj.get("apiVersion") != COMPONENT_KINDS[str(kind)]:
        raise TemplateError(f"{where}: {kind} must be apiVersion {COMPONENT_KINDS[str(kind)]}")
    fullname = component.fullname
    if not isinstance(name, str) or not (name == fullname or name.startswith(f"{fullname}-")):
        raise TemplateError(f"{where}: {kind} {name!r} must be named {fullname} or {fullname}-<suffix>")
    home = ctx.namespace_of(component.service)
    namespace = obj["metadata"].get("namespace")
    if namespace not in (None, home):
        raise TemplateError(
            f"{where}: {kind}/{name} names namespace {namespace!r}; a component's objects live in its "
            f"service's namespace ({home})"
        )
    labels = {
        **(obj["metadata"].get("labels") or {}),
        **_labels(ctx, home),
        COMPONENT_LABEL: fullname,
        COMPONENT_TYPE_LABEL: component.definition.type,
    }
    out = {**obj, "metadata": {**obj["metadata"], "namespace": home, "labels": labels}}
    for template in _pod_templates(out):
        meta = template.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), **component_selector(ctx, component)}
    return out


def _labels(ctx: RenderContext, namespace: str) -> dict[str, str]:
    labels = platform_labels(ctx)
    if namespace != ctx.namespace:  # an attached service's component (see render.labels.metadata)
        labels[PLATFORM_NAMESPACE_LABEL] = ctx.namespace
    return labels


def _network_policy(ctx: RenderContext, component: ResolvedComponent) -> dict[str, Any]:
    """Its pods reachable from the service on the declared ports, and reaching DNS and the
    declared egress; nothing else (the platform's default-deny holds the rest)."""
    network = component.definition.network
    svc = ctx.service(component.service)
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": component_selector(ctx, component)},
        "policyTypes": ["Ingress", "Egress"],
    }
    ports = [{"protocol": p.protocol or "TCP", "port": p.port} for p in (network.ports if network else None) or ()]
    if ports:
        users = {"podSelector": {"matchLabels": {PLATFORM_LABEL: ctx.name, "app.kubernetes.io/name": svc.name}}}
        spec["ingress"] = [{"from": [users], "ports": ports}]
    spec["egress"] = [DNS_EGRESS, *egress_rules((network.egress if network else None) or ())]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        # The dot keeps it apart from any object a template or a service names (DNS labels).
        "metadata": {
            "name": f"{component.fullname}.component",
            "namespace": ctx.namespace_of(component.service),
            "labels": {**_labels(ctx, ctx.namespace_of(component.service)), COMPONENT_LABEL: component.fullname},
        },
        "spec": spec,
    }


def render_component(ctx: RenderContext, component: ResolvedComponent, renderer: Renderer) -> list[dict[str, Any]]:
    variables = template_variables(ctx, component)
    objects: list[dict[str, Any]] = []
    for k, template in enumerate(component.definition.templates):
        where = f"templates[{k}] ({template.name})"
        try:
            docs = load_objects(renderer.render(template.template, variables))
        except TemplateError as exc:
            raise TemplateError(f"{where}: {exc}") from None
        objects.extend(_checked(ctx, component, f"{where}, document {d}", doc) for d, doc in enumerate(docs))
    _outputs(component, renderer, variables)  # refused here, before anything is applied
    objects.append(_network_policy(ctx, component))
    return objects


def render_components(ctx: RenderContext) -> list[dict[str, Any]]:
    """Every component's objects; ComponentProblems names each component that cannot render."""
    renderer = Renderer()
    objects: list[dict[str, Any]] = []
    problems: list[str] = []
    for component in ctx.components:
        try:
            objects.extend(render_component(ctx, component, renderer))
        except TemplateError as exc:
            problems.append(f"{component.path} ({component.definition.type}@{component.version}): {exc}")
    given: dict[tuple[str, str], str] = {}
    for component in ctx.components:
        for out in (component.definition.outputs.env or ()) if component.definition.outputs else ():
            other = given.setdefault((component.service, out.name), component.path)
            if other != component.path:
                problems.append(f"{component.path}: gives {out.name}, as {other} does (rename one use's variable)")
    seen: dict[tuple[str, str], str] = {}
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        owner = obj["metadata"]["labels"][COMPONENT_LABEL]
        if key in seen and seen[key] != owner:
            problems.append(f"{key[0]}/{key[1]} is made by both components {seen[key]} and {owner}")
        elif key in seen:
            problems.append(f"{key[0]}/{key[1]} is made twice by component {owner}")
        seen[key] = owner
    if problems:
        raise ComponentProblems(problems)
    return objects


def _outputs(component: ResolvedComponent, renderer: Renderer, variables: dict[str, Any]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    for out in (component.definition.outputs.env or ()) if component.definition.outputs else ():
        try:
            if out.secretKeyRef is not None:
                secret = renderer.render(out.secretKeyRef.name, variables)
                ref = {"name": secret, "key": out.secretKeyRef.key}
                env.append({"name": out.name, "valueFrom": {"secretKeyRef": ref}})
            else:
                value = renderer.render(out.value or "", variables)
                # The API server stores no empty value: rendering one would be a drift forever.
                env.append({"name": out.name, "value": value} if value else {"name": out.name})
        except TemplateError as exc:
            raise TemplateError(f"outputs.env[{out.name}]: {exc}") from None
    return env


def component_env(ctx: RenderContext, svc: EffectiveService) -> list[dict[str, Any]]:
    """The environment the service's components give it (outputs.env), in their order."""
    renderer = Renderer()
    env: list[dict[str, Any]] = []
    for component in ctx.components:
        if component.service == svc.name:
            env.extend(_outputs(component, renderer, template_variables(ctx, component)))
    return env


def component_egress(ctx: RenderContext, svc: EffectiveService) -> list[dict[str, Any]]:
    """The service's edges to its components' pods."""
    rules = []
    for component in ctx.components:
        network = component.definition.network
        if component.service != svc.name or not network or not network.ports:
            continue
        ports = [{"protocol": p.protocol or "TCP", "port": p.port} for p in network.ports]
        rules.append({"to": [{"podSelector": {"matchLabels": component_selector(ctx, component)}}], "ports": ports})
    return rules
