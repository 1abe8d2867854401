"""The payments service: charges and refunds through a payment-provider adapter, idempotent by key."""
