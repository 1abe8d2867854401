"""The public API's request and response bodies, shared by the gateway (which validates and
documents them) and the services that implement them, so the two cannot drift apart."""
