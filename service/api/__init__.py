"""The HTTP layer: routes, schemas, dependencies, errors and middleware."""
