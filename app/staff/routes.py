"""Routes of this area (mounted by app/main.py)."""


def routes(settings) -> list:
    return []
