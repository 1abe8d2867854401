"""Bodies of the catalogue part of the public API: `GET /products` (public) and the admins'
`POST /admin/products` and `PATCH /admin/products/{sku}`. The orders service owns the catalogue
(see docs/catalogue.md): prices and stock live in its database, so an order is priced and its
stock reserved in the one transaction that creates it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from keelson_services.contracts.orders import MAX_UNIT_PRICE_CENTS, NOT_A_BOOLEAN, Currency
from keelson_services.contracts.text import Name, Sku

MAX_STOCK = 1_000_000_000

PriceCents = Annotated[int, Field(ge=0, le=MAX_UNIT_PRICE_CENTS, description="0 for a free item."), NOT_A_BOOLEAN]
Stock = Annotated[
    int,
    Field(ge=0, le=MAX_STOCK, description="Units on hand, those reserved by pending orders included."),
    NOT_A_BOOLEAN,
]


class Product(BaseModel):
    sku: Sku
    name: str
    price_cents: int
    currency: str
    available: int = Field(description="Units that can be ordered now: on hand, less those reserved by pending orders.")
    updated_at: datetime


class AdminProduct(Product):
    """What an admin sees: the stock behind `available`."""

    stock: int = Field(description="Units on hand.")
    reserved: int = Field(description="Units reserved by orders waiting for their payment.")


class ProductList(BaseModel):
    items: list[Product]
    limit: int
    offset: int
    total: int


class CreateProductRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    name: Name
    price_cents: PriceCents
    currency: Currency
    stock: Stock = 0


class UpdateProductRequest(BaseModel):
    """Only the fields sent change. Stock cannot go below the units reserved (409)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    price_cents: PriceCents | None = None
    stock: Stock | None = None
