"""Per-service databases: names, credentials and the PostgreSQL admin connection.

Pure modules (`naming`, `credentials`, `rotation`, `admin`) hold the rules; `server` is the only
module that talks to PostgreSQL. The area that ties them to a platform is
`keelson.controller.database_area`.
"""
