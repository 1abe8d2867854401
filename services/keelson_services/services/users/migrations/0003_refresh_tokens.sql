-- Refresh tokens, stored as SHA-256 hashes. Each use replaces the token with a new one of the
-- same family; presenting a replaced token again revokes the whole family (it was stolen, or
-- a client kept a copy).
CREATE TABLE refresh_tokens (
    token_hash  bytea       PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid        NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
