"""The notifications service's routes."""

from keelson_services.services.notifications.api.routes import history

ROUTERS = [history.router]
