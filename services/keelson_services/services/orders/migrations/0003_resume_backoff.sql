-- Each failed resume of a pending order pushes its next attempt back (doubling, capped), and the
-- resumer takes the orders that are due, least recently tried first: orders that fail for good
-- no longer hold the front of the queue and starve newer ones.
ALTER TABLE orders ADD COLUMN resume_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN next_resume_at timestamptz;
DROP INDEX orders_pending_updated;
CREATE INDEX orders_pending_due ON orders (coalesce(next_resume_at, updated_at)) WHERE status = 'pending';
