-- Who to notify: the users this service learnt of from `user.registered` (it never reads the
-- users service's tables).
CREATE TABLE recipients (
    user_id    text        PRIMARY KEY,
    email      text,
    name       text,
    phone      text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every notification, one per event and channel: the unique constraint is what makes handling
-- idempotent, so a redelivered or replayed event never sends twice. `sending` is claimed (until
-- `claimed_until`), `failed` may be tried again by a retry, `sent` is final.
CREATE TABLE notifications (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id      text        NOT NULL,
    event_type    text        NOT NULL,
    channel       text        NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    template      text        NOT NULL,
    user_id       text        NOT NULL,
    recipient     text        NOT NULL,
    subject       text,
    body          text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    attempts      integer     NOT NULL DEFAULT 1,
    error         text,
    provider_id   text,
    trace_id      text,
    claimed_until timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    CONSTRAINT notifications_once UNIQUE (event_id, channel)
);

CREATE INDEX notifications_user_created ON notifications (user_id, created_at DESC, id);
