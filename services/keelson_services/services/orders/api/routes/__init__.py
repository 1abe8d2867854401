"""The orders service's routes."""

from keelson_services.services.orders.api.routes import orders

ROUTERS = [orders.router]
