"""Cross-cutting web setup: middleware and exception handlers (applied by app/main.py)."""


def setup(app, settings) -> None:
    """Install middleware and error handlers on the app."""
