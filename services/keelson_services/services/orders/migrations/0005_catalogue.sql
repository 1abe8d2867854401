-- The catalogue: products, their prices and their stock, in the orders database so that an
-- order is priced and its stock reserved in the transaction that creates it (docs/catalogue.md).
-- `stock` counts the units on hand, `reserved` those held by pending orders: available is their
-- difference, and the CHECK is the last line against overselling (a reservation is one UPDATE
-- guarded by the same condition, serialised by the row lock).
CREATE TABLE products (
    sku         text        PRIMARY KEY,
    name        text        NOT NULL,
    price_cents bigint      NOT NULL CHECK (price_cents >= 0),
    currency    text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    stock       integer     NOT NULL CHECK (stock >= 0),
    reserved    integer     NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= stock),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
