-- A refund the provider declined is final under its Idempotency-Key (payments replays the
-- verdict): the next cancel must ask again under a new key, so each order counts its declined
-- refunds, and the count names the key of the next attempt.
ALTER TABLE orders ADD COLUMN refund_attempts integer NOT NULL DEFAULT 0;
