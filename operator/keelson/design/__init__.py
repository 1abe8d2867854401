"""From a system type and a load to a reviewed architecture document and the platform that runs it.

Pure: a blueprint (a catalogue entry, or a user's file) and the daily users in; the platform
manifest, the Markdown document and its diagrams out. The numbers come from the sizing model
through the same code the operator uses (`keelson.effective`, `keelson.topics`), so the document
states what the platform will really get.
"""

from __future__ import annotations

from keelson.design.blueprint import Blueprint
from keelson.design.catalogue import SYSTEM_TYPES, load_blueprint, system_blueprint
from keelson.design.composing import Design, compose
from keelson.design.loads import parse_daily_users

__all__ = [
    "SYSTEM_TYPES",
    "Blueprint",
    "Design",
    "compose",
    "load_blueprint",
    "parse_daily_users",
    "system_blueprint",
]
