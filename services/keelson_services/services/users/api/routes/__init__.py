"""The users service's routes, one module per part of its API."""

from keelson_services.services.users.api.routes import accounts, admin, auth, internal, jwks, profile

ROUTERS = [accounts.router, auth.router, profile.router, admin.router, internal.router, jwks.router]
