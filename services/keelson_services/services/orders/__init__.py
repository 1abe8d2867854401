"""The orders service: orders, their state machine, the synchronous payment and order events."""
