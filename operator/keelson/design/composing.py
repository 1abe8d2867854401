"""A design, composed: the platform manifest and everything the document says about it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from keelson.api.v1alpha1 import DNS1123_LABEL, MAX_PLATFORM_NAME, MicroservicePlatform
from keelson.design.blueprint import Blueprint
from keelson.design.diagram import dot, mermaid
from keelson.design.document import render_document
from keelson.design.facts import DesignFacts, design_facts
from keelson.design.platform import platform_manifest


@dataclass(frozen=True)
class Design:
    blueprint: Blueprint
    manifest: dict[str, Any]  # what platform.yaml holds
    facts: DesignFacts
    markdown: str
    dot: str


def compose(blueprint: Blueprint, *, daily_users: int, name: str | None = None) -> Design:
    name = name or blueprint.system
    # The API model leaves object names to the API server; a design must not hand one it refuses.
    if not re.fullmatch(DNS1123_LABEL, name) or len(name) > MAX_PLATFORM_NAME:
        raise ValueError(f"platform name {name!r}: lower-case letters, digits and '-', at most {MAX_PLATFORM_NAME}")
    manifest = platform_manifest(blueprint, daily_users=daily_users, name=name)
    # Through the API model, as the operator reads it: a design that would be refused fails here.
    platform = MicroservicePlatform.from_object(manifest)
    facts = design_facts(blueprint, platform)
    return Design(
        blueprint=blueprint,
        manifest=manifest,
        facts=facts,
        markdown=render_document(blueprint, facts, name=platform.metadata.name, diagram=mermaid(facts)),
        dot=dot(facts, title=f"{blueprint.title}: {daily_users:,} daily users"),
    )
