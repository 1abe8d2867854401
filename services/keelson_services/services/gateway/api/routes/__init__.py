"""The gateway's public API: one module per owning service, then the catch-all for paths the
public API does not name. The order matters: the catch-all must come last."""

from keelson_services.services.gateway.api.routes import (
    catalogue,
    fulfilment,
    notifications,
    orders,
    passthrough,
    users,
)

ROUTERS = [
    users.router,
    orders.router,
    catalogue.router,
    fulfilment.router,
    notifications.router,
    notifications.admin_router,
    passthrough.router,
]
