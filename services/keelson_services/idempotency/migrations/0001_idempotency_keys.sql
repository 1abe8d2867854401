-- Idempotency keys of requests with side effects (payments' charges, orders' creation).
-- One row per (scope, key): the request's fingerprint, whether it is still running (with a lease
-- a crashed request's key falls free after), and the response to replay, byte for byte.
CREATE TABLE idempotency_keys (
    scope            text        NOT NULL,
    key              text        NOT NULL,
    fingerprint      text        NOT NULL,
    status           text        NOT NULL DEFAULT 'in_progress' CHECK (status IN ('in_progress', 'completed')),
    locked_until     timestamptz NOT NULL,
    response_status  integer,
    response_headers jsonb,
    response_body    bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
