"""The orders service's routes."""

from keelson_services.services.orders.api.routes import catalogue, orders

ROUTERS = [orders.router, catalogue.router]
