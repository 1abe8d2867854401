-- Orders of a deleted account (user.deleted, docs/accounts.md) are kept for accounting, with what
-- linked them to the person erased: `erased_at` says when.
ALTER TABLE orders ADD COLUMN erased_at timestamptz;
