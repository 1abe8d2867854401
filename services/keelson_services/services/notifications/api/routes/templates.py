"""The template admin API, admins only: `/api/v1/admin/notifications/templates` (list; versions of
a (channel, name, locale); a new version; activate one, a rollback when it is older),
`/api/v1/admin/notifications/preview` (render with sample data, nothing sent) and
`/api/v1/admin/notifications/audit` (every change: who, when, which version). A source that does
not parse or does not fit its channel is refused with the part and line at fault."""

from __future__ import annotations

from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, Path, Query

from keelson_services.contracts.notifications import (
    LOCALE_PATTERN,
    NAME_PATTERN,
    ActivateRequest,
    ChannelName,
    Preview,
    PreviewRequest,
    TemplateAuditEntry,
    TemplateAuditList,
    TemplateSummary,
    TemplateSummaryList,
    TemplateVersion,
    TemplateVersionList,
    TemplateVersionRequest,
)
from keelson_services.deps import require_role
from keelson_services.errors import ApiError
from keelson_services.identity import Identity
from keelson_services.messaging.headers import describe_error
from keelson_services.services.notifications.deps import Components
from keelson_services.services.notifications.rendering import TemplateInvalidError, TemplateSource
from keelson_services.services.notifications.template_store import StoredTemplate, VersionNotFoundError, locales

router = APIRouter(prefix="/api/v1/admin/notifications", tags=["admin"])
Admin = Annotated[Identity, Depends(require_role("admin"))]
Name = Annotated[str, Path(pattern=NAME_PATTERN)]
Locale = Annotated[str, Path(pattern=LOCALE_PATTERN)]
SAMPLE_RECIPIENT = {"user_id": "preview", "email": "ada@example.com", "name": "Ada", "phone": None, "locale": "en"}


def _version(rows: list[dict[str, Any]], version: int) -> TemplateVersion:
    return TemplateVersion.model_validate(next(r for r in rows if r["version"] == version))


async def _known(parts: Components, channel: ChannelName, name: str) -> None:
    """Templates are the catalogue's: a (channel, name) no locale has is a typo, not a new one."""
    if not any(s["channel"] == channel and s["name"] == name for s in await parts.templates.summaries()):
        raise ApiError(404, "not_found", f"No {channel} template {name!r}")


@router.get("/templates", response_model=TemplateSummaryList, summary="Notification templates (admin)")
async def list_templates(_: Admin, parts: Components) -> TemplateSummaryList:
    return TemplateSummaryList(items=[TemplateSummary.model_validate(r) for r in await parts.templates.summaries()])


@router.get(
    "/templates/{channel}/{name}/{locale}", response_model=TemplateVersionList, summary="A template's versions (admin)"
)
async def template_versions(
    channel: ChannelName, name: Name, locale: Locale, _: Admin, parts: Components
) -> TemplateVersionList:
    rows = await parts.templates.versions(channel, name, locale)
    if not rows:
        raise ApiError(404, "not_found", f"No {channel} template {name!r} in {locale}")
    return TemplateVersionList(items=[TemplateVersion.model_validate(r) for r in rows])


@router.post(
    "/templates/{channel}/{name}/{locale}/versions", response_model=TemplateVersion, status_code=201,
    summary="A new version of a template (admin)",
)  # fmt: skip
async def create_version(
    *, channel: ChannelName, name: Name, locale: Locale, body: TemplateVersionRequest, caller: Admin, parts: Components
) -> TemplateVersion:
    await _known(parts, channel, name)
    source = TemplateSource(body.subject, body.body, body.html)
    try:
        parts.renderer.validate(channel, source)
    except TemplateInvalidError as exc:
        raise ApiError(
            422, "template_invalid", f"The template is not valid: {exc}", details={"problem": str(exc)}
        ) from None
    version = await parts.templates.create(channel, name, locale, source, actor=caller.user_id, activate=body.activate)
    return _version(await parts.templates.versions(channel, name, locale), version)


@router.post(
    "/templates/{channel}/{name}/{locale}/activate", response_model=TemplateVersion,
    summary="Make a version the active one: a rollback when it is older (admin)",
)  # fmt: skip
async def activate_version(
    *, channel: ChannelName, name: Name, locale: Locale, body: ActivateRequest, caller: Admin, parts: Components
) -> TemplateVersion:
    try:
        await parts.templates.activate(channel, name, locale, body.version, actor=caller.user_id)
    except VersionNotFoundError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    return _version(await parts.templates.versions(channel, name, locale), body.version)


@router.post(
    "/preview/{channel}/{name}", response_model=Preview,
    summary="Render a template with sample data, sending nothing (admin)",
)  # fmt: skip
async def preview(channel: ChannelName, name: Name, body: PreviewRequest, _: Admin, parts: Components) -> Preview:
    found: StoredTemplate | None
    if body.version is None:
        found = await parts.templates.find(channel, name, locales(body.locale))
    else:
        found = await parts.templates.version(channel, name, body.locale, body.version)
    if found is None:
        raise ApiError(404, "not_found", f"No {channel} template {name!r} for {body.locale}")
    context = {
        "data": body.data,
        "recipient": SAMPLE_RECIPIENT | body.recipient,
        "event": {"id": "preview", "type": "preview"},
        "platform": parts.notifier.platform,
        # What the verification message sees besides (`contacts.set_phone`): a sample code.
        "code": "123456",
        "minutes": 10,
    }
    try:
        rendered = parts.renderer.render_source(channel, name, found.source, context)
    except (jinja2.TemplateError, ValueError, TypeError) as exc:
        raise ApiError(
            422, "template_render_failed", f"The template does not render with this data: {describe_error(exc)}"
        ) from None
    return Preview(
        name=name, channel=channel, locale=found.locale, version=found.version,
        subject=rendered.subject, body=rendered.body, html=rendered.html,
    )  # fmt: skip


@router.get("/audit", response_model=TemplateAuditList, summary="Template changes, newest first (admin)")
async def audit(
    _: Admin,
    parts: Components,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> TemplateAuditList:
    rows = await parts.templates.audit(limit=limit, offset=offset)
    return TemplateAuditList(items=[TemplateAuditEntry.model_validate(r) for r in rows])
