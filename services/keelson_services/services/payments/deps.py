"""Typed dependencies of the payments service's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from keelson_services.services.payments.components import PaymentsComponents


def components(request: Request) -> PaymentsComponents:
    found: PaymentsComponents = request.app.state.payments
    return found


Components = Annotated[PaymentsComponents, Depends(components)]
IdempotencyKeyHeader = Annotated[str | None, Header(alias="Idempotency-Key", description="Required.")]
