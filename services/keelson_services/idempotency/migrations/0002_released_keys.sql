-- A released key stays bound to its request: a claim given up after a refusal or a 503/504 is
-- marked released, not deleted, so that the same key with a different body is still a 422 (the
-- first request may have left an order behind that a retry would otherwise return for the other
-- body). Released and completed keys are purged after the retention period.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_status_check;
ALTER TABLE idempotency_keys
    ADD CONSTRAINT idempotency_keys_status_check CHECK (status IN ('in_progress', 'completed', 'released'));
