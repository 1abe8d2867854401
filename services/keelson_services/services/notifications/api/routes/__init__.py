"""The notifications service's routes."""

from keelson_services.services.notifications.api.routes import contacts, history, preferences, templates

ROUTERS = [history.router, contacts.router, preferences.router, templates.router]
