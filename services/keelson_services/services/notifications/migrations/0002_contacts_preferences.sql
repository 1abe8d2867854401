-- A phone number is used for SMS only once its owner proved it is theirs (`phone_verified_at`);
-- one from `user.registered` is not. `locale` picks the templates' language (`template_store.py`).
ALTER TABLE recipients ADD COLUMN phone_verified_at timestamptz, ADD COLUMN locale text;

-- A pending verification per user: only the code's salted hash is kept, for a short time and a
-- few attempts, so a leaked table or a guessing caller learns nothing useful.
CREATE TABLE phone_verifications (
    user_id       text        PRIMARY KEY,
    phone         text        NOT NULL,
    code_hash     bytea       NOT NULL,
    salt          bytea       NOT NULL,
    attempts_left integer     NOT NULL,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Web Push subscriptions (RFC 8030/8291): where the push service takes messages for a device,
-- and the device's public key and auth secret the messages are encrypted for.
CREATE TABLE push_devices (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    text        NOT NULL,
    endpoint   text        NOT NULL UNIQUE,
    p256dh     text        NOT NULL,
    auth       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX push_devices_user ON push_devices (user_id, created_at);

-- What a user turned off, per channel and category; no row means on. Transactional messages are
-- never looked up here: they are always sent.
CREATE TABLE preferences (
    user_id    text        NOT NULL,
    channel    text        NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    category   text        NOT NULL,
    enabled    boolean     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, channel, category)
);

-- Users erased on `user.deleted`, by a hash of their id only: a late or replayed event about them
-- is dropped instead of waiting for a `user.registered` that will never come.
CREATE TABLE erased_users (
    user_hash bytea       PRIMARY KEY,
    erased_at timestamptz NOT NULL DEFAULT now()
);
