"""The API gateway: authentication, rate limits, validation and routing of the public API.

Layout: `main.py` (the app), `config.py`, `components.py` and `deps.py` (what routes get),
`api/routes/` (the public API, one module per owning service, then the catch-all), and one
module per concern (`routing`, `proxy`, `ratelimit`). The gateway has no database.
"""
