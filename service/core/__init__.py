"""Process-wide configuration and logging for the service."""
