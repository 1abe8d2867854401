-- Orders of customers (user ids as the gateway established them). One order per customer and
-- Idempotency-Key, so a re-run of a creation after a crash finds the order it already made.
-- Items are immutable once ordered, so they are kept with the order as JSON.
CREATE TABLE orders (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         text        NOT NULL,
    idempotency_key text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'paid', 'payment_failed', 'cancelled')),
    currency        text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    total_cents     bigint      NOT NULL CHECK (total_cents >= 0),
    items           jsonb       NOT NULL,
    payment_id      uuid,
    refunded_cents  bigint      NOT NULL DEFAULT 0,
    failure_code    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, idempotency_key)
);

CREATE INDEX orders_user_created ON orders (user_id, created_at DESC, id);

-- Every state change, with what caused it: the audit trail of the state machine.
CREATE TABLE order_transitions (
    id          bigserial   PRIMARY KEY,
    order_id    uuid        NOT NULL REFERENCES orders (id),
    from_status text,
    to_status   text        NOT NULL,
    cause       text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX order_transitions_order ON order_transitions (order_id, id);

-- Events this service consumed (payment.completed / payment.failed), by envelope id: a
-- redelivered event is recognised and skipped.
CREATE TABLE processed_events (
    event_id     text        PRIMARY KEY,
    event_type   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
