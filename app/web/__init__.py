"""HTTP: the Starlette application, its routes and pages."""
