-- Payments, one per charge request (its Idempotency-Key), and their refunds. A payment is
-- `processing` while the provider is being asked, then succeeded or failed; refunds move it to
-- partially_refunded or refunded. Amounts are whole cents.
CREATE TABLE payments (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    idempotency_key    text        NOT NULL UNIQUE,
    order_id           uuid        NOT NULL,
    customer_id        text        NOT NULL,
    amount_cents       bigint      NOT NULL CHECK (amount_cents > 0),
    currency           text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    description        text,
    status             text        NOT NULL DEFAULT 'processing'
                       CHECK (status IN ('processing', 'succeeded', 'failed', 'refunded', 'partially_refunded')),
    refunded_cents     bigint      NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),
    provider_reference text,
    failure_code       text,
    failure_message    text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX payments_order_id ON payments (order_id, created_at);

CREATE TABLE refunds (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    payment_id         uuid        NOT NULL REFERENCES payments (id),
    idempotency_key    text        NOT NULL UNIQUE,
    amount_cents       bigint      NOT NULL CHECK (amount_cents > 0),
    reason             text,
    status             text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    provider_reference text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX refunds_payment_id ON refunds (payment_id, created_at);
