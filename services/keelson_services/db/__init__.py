"""A service's own database: the connection pool and forward-only migrations."""

from keelson_services.db.migrations import Migration, MigrationError, load_migrations, migrate
from keelson_services.db.pool import Connection, Database

__all__ = ["Connection", "Database", "Migration", "MigrationError", "load_migrations", "migrate"]
