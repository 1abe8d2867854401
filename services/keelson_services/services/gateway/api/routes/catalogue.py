"""The catalogue part of the public API, owned by the service exposed at `/orders` (the catalogue
lives with the orders it prices): listing products needs no token (rate-limited by address like
every anonymous request; a token sent along is ignored), changing them needs the admin role."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from keelson_services.contracts.catalogue import (
    AdminProduct,
    CreateProductRequest,
    Product,
    ProductList,
    UpdateProductRequest,
)
from keelson_services.identity import Identity
from keelson_services.services.gateway.api.routes.documented import answers
from keelson_services.services.gateway.deps import Admin, Anonymous, Gateway
from keelson_services.services.gateway.proxy import forward

AREA = "/orders"
router = APIRouter(prefix="/api/v1")
SkuPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[^\u0000]*$")]


async def _to_catalogue(gateway: Gateway, request: Request, caller: Identity | None = None) -> Response:
    return await forward(gateway.client, request, service=gateway.routes.for_area(AREA).service, caller=caller)


@router.get(
    "/products", tags=["catalogue"], summary="The catalogue (no login needed)", response_model=None,
    responses=answers(200, ProductList),
)  # fmt: skip
async def list_products(
    request: Request,
    gateway: Gateway,
    _: Anonymous,
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    return await _to_catalogue(gateway, request)


@router.get(
    "/products/{sku}", tags=["catalogue"], summary="One product (no login needed)", response_model=None,
    responses=answers(200, Product),
)  # fmt: skip
async def read_product(sku: SkuPath, request: Request, gateway: Gateway, _: Anonymous) -> Response:
    return await _to_catalogue(gateway, request)


@router.post(
    "/admin/products", tags=["admin"], summary="Add a product (admin)", status_code=201, response_model=None,
    responses=answers(201, AdminProduct),
)  # fmt: skip
async def create_product(body: CreateProductRequest, request: Request, gateway: Gateway, caller: Admin) -> Response:
    return await _to_catalogue(gateway, request, caller)


@router.patch(
    "/admin/products/{sku}", tags=["admin"], summary="Change a product's name, price or stock (admin)",
    response_model=None, responses=answers(200, AdminProduct),
)  # fmt: skip
async def update_product(
    sku: SkuPath, body: UpdateProductRequest, request: Request, gateway: Gateway, caller: Admin
) -> Response:
    return await _to_catalogue(gateway, request, caller)
