"""`keelson status`: a platform's state as a person reads it. The view and its text are pure
(`view`, `text`); `reading` fetches the objects from the API."""
