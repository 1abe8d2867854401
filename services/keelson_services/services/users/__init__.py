"""The users service: register, log in, tokens, profile, roles, deactivation.

Layout: `main.py` (the app), `config.py`, `components.py` and `deps.py` (what routes get),
`api/routes/` (one module per part of the API), `migrations/`, and one module per concern
(`passwords`, `signing_keys`, `access_tokens`, `refresh_tokens`, `repository`, `manage`).
"""
