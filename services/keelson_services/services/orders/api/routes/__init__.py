"""The orders service's routes."""

from keelson_services.services.orders.api.routes import catalogue, fulfilment, orders

ROUTERS = [orders.router, catalogue.router, fulfilment.router]
