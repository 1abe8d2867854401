"""The notifications service: turns order, payment and user events into emails, SMS and pushes."""
