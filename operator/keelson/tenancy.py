"""Which PlatformServices a platform accepts, and the platform they make together. Pure.

A product team attaches a service to a platform with a `PlatformService` in its own namespace;
the platform's `spec.tenancy` says which namespaces may (a label selector) and what their
services may do (be exposed on the gateway, subscribe to topics published outside their
namespace, use which component types). Every pass of the platform decides again, from the
PlatformServices that name it and the namespaces' labels, so a verdict follows any change of
either; the outcome is a merged spec (the platform's services, then the accepted ones) that the
rest of the operator renders like any other, and a placement per attached service: its namespace
and its owner.

Verdicts do not depend on the order PlatformServices are listed in: name clashes go to the oldest
(creation time, then namespace/name), and calls between attached services are checked on the
whole set, so two teams' services that call each other are both accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from keelson.api.platformservice import PlatformService
from keelson.api.v1alpha1 import MicroservicePlatformSpec, Placement, Service, topic_name

ACCEPTED = "Accepted"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Verdict:
    """A PlatformService accepted, or refused with the reason its condition shows."""

    namespace: str
    name: str
    uid: str
    generation: int
    accepted: bool
    reason: str
    message: str
    service: str | None = None


@dataclass(frozen=True)
class Attachment:
    spec: MicroservicePlatformSpec  # the platform's services, then the accepted ones
    placements: Mapping[str, Placement]  # by service name: the accepted ones
    verdicts: tuple[Verdict, ...]


def _order(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _summary(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


class _Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def attach(
    spec: MicroservicePlatformSpec,
    platform: tuple[str, str],
    candidates: Iterable[Mapping[str, Any]],
    namespace_labels: Mapping[str, Mapping[str, str]],
    components: Callable[[Service, str], list[str]] = lambda _service, _namespace: [],
) -> Attachment:
    """The platform `platform` (namespace, name) with the PlatformServices that name it.

    `namespace_labels` holds the labels of the namespaces the operator sees; a namespace it does
    not know is refused (it may not exist yet, or the operator may not watch it). `components`
    lists what is wrong with a service's components in a namespace (the operator resolves and
    renders them, `controller.components.team_component_problems`): a team's unknown type, bad
    parameters or failing template refuse its service alone, never the platform."""
    verdicts: list[Verdict] = []
    eligible: list[tuple[PlatformService, Service]] = []
    taken = {s.name: f"the platform's service {s.name}" for s in spec.services}
    ordered = sorted(candidates, key=_order)
    parsed: list[tuple[Mapping[str, Any], PlatformService | None, str]] = []
    for obj in ordered:
        try:
            parsed.append((obj, PlatformService.from_object(obj), ""))
        except ValidationError as exc:
            parsed.append((obj, None, _summary(exc)))
    # Topics each namespace's services publish: subscribing to one's own team's is always allowed.
    published: dict[str, set[str]] = {}
    for _, ps, _ in parsed:
        if ps is not None:
            published.setdefault(ps.metadata.namespace, set()).update(
                topic_name(spec.domain, e) for e in ps.spec.publishes or ()
            )
    for obj, ps, problem in parsed:
        meta = obj.get("metadata") or {}
        ident = (str(meta.get("namespace") or ""), str(meta.get("name") or ""), str(meta.get("uid") or ""))
        generation = int(meta.get("generation") or 0)
        if ps is None:
            verdicts.append(Verdict(*ident, generation, False, "InvalidSpec", problem))
            continue
        try:
            service = ps.spec.service()
            _check_tenancy(spec, platform, ps, service, namespace_labels, published)
            owner = taken.get(service.name)
            if owner is not None:
                raise _Refused("NameTaken", f"service name {service.name} is taken by {owner}")
            problems = components(service, ps.metadata.namespace)
            if problems:
                raise _Refused("InvalidComponent", "; ".join(problems))
        except _Refused as refused:
            verdicts.append(Verdict(*ident, generation, False, refused.reason, refused.message, ps.spec.name))
            continue
        taken[service.name] = f"PlatformService {ps.metadata.namespace}/{ps.metadata.name}"
        eligible.append((ps, service))

    merged, accepted, refusals = _merge(spec, eligible)
    for ps, service in eligible:
        key = (ps.metadata.namespace, ps.metadata.name, ps.metadata.uid)
        if service.name in accepted:
            message = f"attached to {platform[0]}/{platform[1]}"
            verdicts.append(Verdict(*key, ps.metadata.generation, True, "Attached", message, service.name))
        else:
            reason, message = refusals[service.name]
            verdicts.append(Verdict(*key, ps.metadata.generation, False, reason, message, service.name))
    placements = {
        service.name: Placement(
            service=service.name, namespace=ps.metadata.namespace, name=ps.metadata.name, uid=ps.metadata.uid
        )
        for ps, service in eligible
        if service.name in accepted
    }
    return Attachment(spec=merged, placements=placements, verdicts=tuple(verdicts))


def _check_tenancy(  # noqa: PLR0917 - one check, split out of attach for reading
    spec: MicroservicePlatformSpec,
    platform: tuple[str, str],
    ps: PlatformService,
    service: Service,
    namespace_labels: Mapping[str, Mapping[str, str]],
    published: Mapping[str, set[str]],
) -> None:
    tenancy = spec.tenancy
    namespace = ps.metadata.namespace
    where = f"{platform[0]}/{platform[1]}"
    if tenancy is None:
        raise _Refused("NamespaceNotAllowed", f"platform {where} accepts no PlatformServices (it has no spec.tenancy)")
    labels = namespace_labels.get(namespace)
    if labels is None:
        raise _Refused("NamespaceNotAllowed", f"namespace {namespace} is not known to the operator")
    labels = {NAMESPACE_NAME_LABEL: namespace, **labels}
    if not tenancy.namespaceSelector.matches(labels):
        raise _Refused(
            "NamespaceNotAllowed",
            f"namespace {namespace} does not match spec.tenancy.namespaceSelector of platform {where}",
        )
    if service.expose is not None and not tenancy.expose:
        raise _Refused(
            "ExposeNotAllowed", f"platform {where} does not let attached services be exposed (spec.tenancy.expose)"
        )
    allowed_types = set(tenancy.componentTypes or ())
    for component in service.components or ():
        if component.type_name not in allowed_types:
            raise _Refused(
                "ComponentTypeNotAllowed",
                f"spec.components[{component.name}]: type {component.type_name} is not in spec.tenancy.componentTypes "
                f"of platform {where}",
            )
    if not tenancy.subscribe:
        own = published.get(namespace, set())
        for event in service.subscribes or ():
            topic = topic_name(spec.domain, event)
            if topic not in own:
                raise _Refused(
                    "SubscribeNotAllowed",
                    f"spec.subscribes: {topic} is published outside namespace {namespace}; platform {where} does not "
                    "allow that (spec.tenancy.subscribe)",
                )


def _merge(
    spec: MicroservicePlatformSpec, eligible: list[tuple[PlatformService, Service]]
) -> tuple[MicroservicePlatformSpec, set[str], dict[str, tuple[str, str]]]:
    """The platform with as many eligible services as validate together: all of them when they
    do (calls between them are then fine in any order); otherwise, oldest first, each one that
    validates with those accepted so far, repeated until nothing more fits."""
    if not eligible:
        return spec, set(), {}
    base = spec.model_dump(exclude_none=True)

    def merged(services: list[Service]) -> MicroservicePlatformSpec:
        extra = [s.model_dump(exclude_none=True) for s in services]
        return MicroservicePlatformSpec.model_validate({**base, "services": [*base["services"], *extra]})

    try:
        return merged([s for _, s in eligible]), {s.name for _, s in eligible}, {}
    except ValidationError:
        pass
    accepted: list[Service] = []
    refusals: dict[str, tuple[str, str]] = {}
    remaining = [s for _, s in eligible]
    progress = True
    while progress and remaining:
        progress = False
        for service in list(remaining):
            try:
                merged([*accepted, service])
            except ValidationError as exc:
                refusals[service.name] = ("InvalidService", _summary(exc))
                continue
            accepted.append(service)
            remaining.remove(service)
            refusals.pop(service.name, None)
            progress = True
    return merged(accepted), {s.name for s in accepted}, refusals
