-- Fulfilment after payment: an admin ships a paid order, then marks it delivered (states.py).
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending', 'paid', 'payment_failed', 'cancelled', 'shipped', 'delivered'));
