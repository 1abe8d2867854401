-- The resumer looks for pending orders nobody has touched for a while; few orders are pending at
-- any time, so a partial index keeps that look cheap however many orders there are.
CREATE INDEX orders_pending_updated ON orders (updated_at) WHERE status = 'pending';
