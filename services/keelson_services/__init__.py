"""The shared library of Keelson's reference services (settings, messaging, ...)."""
