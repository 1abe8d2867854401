"""The payments service's routes."""

from keelson_services.services.payments.api.routes import payments

ROUTERS = [payments.router]
