"""The catalogue: `GET /api/v1/products` for anyone (the gateway lets it through without a
token), `POST /api/v1/admin/products` and `PATCH /api/v1/admin/products/{sku}` for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from keelson_services.contracts.catalogue import (
    AdminProduct,
    CreateProductRequest,
    Product,
    ProductList,
    UpdateProductRequest,
)
from keelson_services.deps import require_role
from keelson_services.errors import ApiError
from keelson_services.identity import Identity
from keelson_services.services.orders.deps import Components

router = APIRouter(prefix="/api/v1", tags=["catalogue"])
Admin = Annotated[Identity, Depends(require_role("admin"))]
SkuPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[^\u0000]*$")]


@router.get("/products", response_model=ProductList, summary="The catalogue, by SKU")
async def list_products(
    parts: Components,
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ProductList:
    limit = limit or parts.config.page_limit
    products, total = await parts.catalogue.page(limit=limit, offset=offset)
    return ProductList(items=products, limit=limit, offset=offset, total=total)


@router.get("/products/{sku}", response_model=Product, summary="One product")
async def read_product(sku: SkuPath, parts: Components) -> Product:
    product = await parts.catalogue.get(sku)
    if product is None:
        raise ApiError(404, "not_found", f"No product with SKU {sku}", details={"sku": sku})
    return Product.model_validate(product.model_dump())


@router.post("/admin/products", response_model=AdminProduct, status_code=201, summary="Add a product (admin)")
async def create_product(body: CreateProductRequest, _: Admin, parts: Components) -> AdminProduct:
    return await parts.catalogue.create(body)


@router.patch("/admin/products/{sku}", response_model=AdminProduct, summary="Change a product's price or stock (admin)")
async def update_product(sku: SkuPath, body: UpdateProductRequest, _: Admin, parts: Components) -> AdminProduct:
    return await parts.catalogue.update(sku, body)
