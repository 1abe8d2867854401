-- The fake payment provider's own ledger (a real provider keeps this on its side): one row per
-- operation key, so that a repeated charge or refund with the same key returns the first result
-- and never moves money twice, across restarts too.
CREATE TABLE fake_provider_operations (
    key             text        PRIMARY KEY,
    kind            text        NOT NULL CHECK (kind IN ('charge', 'refund')),
    amount_cents    bigint      NOT NULL,
    currency        text,
    reference       text        NOT NULL,
    succeeded       boolean     NOT NULL,
    failure_code    text,
    failure_message text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
