-- The transactional outbox: events a service wrote in the same transaction as the change they
-- announce, published to Kafka by the relay after the commit (and never for a rolled-back one).
-- `event_id` is the envelope id, so a re-publish after a crash is recognisably the same event.
CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    event        text        NOT NULL,
    key          text        NOT NULL,
    data         jsonb       NOT NULL,
    traceparent  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);

CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;
