-- The platform-wide rate limits: one GCRA counter per policy and key (see shared_limits.py).
-- `key_hash` is a SHA-256 of "<policy>:<key>", so no address or email is stored. `tat` is the
-- counter's theoretical arrival time in seconds of the database's clock; a row whose tat has
-- passed is a full budget and may be deleted at any time.
-- UNLOGGED: counters are not worth a WAL write per request; a crash merely resets them.
CREATE UNLOGGED TABLE rate_limits (
    key_hash bytea            PRIMARY KEY,
    tat      double precision NOT NULL,
    allowed  boolean          NOT NULL
);

CREATE INDEX rate_limits_by_tat ON rate_limits (tat);
