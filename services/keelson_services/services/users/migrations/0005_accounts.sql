-- Accounts (docs/accounts.md): email verification, password reset, revocation of sessions, erasure.
-- `token_version` is in every access token (`ver`); raising it ends every session the account has
-- (the gateway refuses older tokens). Accounts made before verification existed count as
-- verified: their owners were never asked, and must not lose ordering to an upgrade.
ALTER TABLE users
    ADD COLUMN email_verified_at timestamptz,
    ADD COLUMN token_version     integer     NOT NULL DEFAULT 0,
    ADD COLUMN erased_at         timestamptz;

UPDATE users SET email_verified_at = created_at;

-- One-time tokens sent by email (verification and password-reset links), stored as SHA-256
-- hashes only: a dump of this table opens no link.
CREATE TABLE account_tokens (
    token_hash bytea       PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text        NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz
);

CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);
