"""Start a reference service: `python -m keelson_services.run NAME [COMMAND ...]`.

NAME alone serves the service on `KEELSON_PORT` (the image's command is the service's name, see
the Dockerfile); a service may also have administrative commands (`users grant-admin EMAIL`).
The listen address is `KEELSON_BIND_HOST` (default 0.0.0.0, for a pod; `keelson dev run` sets
127.0.0.1).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

# Service name -> "module:factory" of its app; other services add themselves here.
SERVICES = {
    "users": "keelson_services.services.users.main:create_app",
    "gateway": "keelson_services.services.gateway.main:create_app",
    "orders": "keelson_services.services.orders.main:create_app",
    "payments": "keelson_services.services.payments.main:create_app",
    "notifications": "keelson_services.services.notifications.main:create_app",
}
# Service name -> "module:function(argv) -> exit code" for its administrative commands.
COMMANDS = {
    "users": "keelson_services.services.users.manage:main",
}


def _load(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return found


def serve(name: str) -> None:
    import uvicorn

    from keelson_services.settings import Settings

    settings = Settings.from_env()
    app = _load(SERVICES[name])(settings)
    uvicorn.run(
        app,
        host=os.environ.get("KEELSON_BIND_HOST", "0.0.0.0"),
        port=settings.port,
        log_config=None,  # the app configured JSON logging already
        access_log=False,  # the observability middleware writes the access log
        server_header=False,
        # The peer's address as it is: uvicorn would otherwise believe X-Forwarded-For from
        # 127.0.0.1; the gateway decides which proxies to believe (gateway/forwarded.py).
        proxy_headers=False,
        # Within the pod's 30 s termination grace period, in-flight requests get 25 s to finish.
        timeout_graceful_shutdown=25,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in SERVICES:
        print(f"usage: python -m keelson_services.run {{{','.join(sorted(SERVICES))}}} [COMMAND ...]", file=sys.stderr)
        return 2
    name, rest = args[0], args[1:]
    if rest:
        if name not in COMMANDS:
            print(f"{name} has no commands", file=sys.stderr)
            return 2
        code: int = _load(COMMANDS[name])(rest)
        return code
    serve(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
