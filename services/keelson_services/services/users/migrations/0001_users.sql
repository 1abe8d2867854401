-- Accounts. Emails are kept as given and unique regardless of case.
CREATE TABLE users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text        NOT NULL,
    name          text        NOT NULL,
    password_hash text        NOT NULL,
    roles         text[]      NOT NULL DEFAULT ARRAY['customer'],
    active        boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_roles_known CHECK (roles <@ ARRAY['customer', 'admin'] AND cardinality(roles) > 0)
);

CREATE UNIQUE INDEX users_email_unique ON users (lower(email));
CREATE INDEX users_created_at ON users (created_at, id);
