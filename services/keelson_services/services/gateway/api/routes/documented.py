"""OpenAPI documentation of forwarded responses: the gateway returns the service's response as
it is, so the model is documentation only, never re-validated on the way out."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def answers(status: int, model: type[BaseModel] | None, description: str = "Success") -> dict[int | str, Any]:
    if model is None:
        return {status: {"description": description}}
    return {status: {"model": model, "description": description}}
