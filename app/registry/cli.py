"""Subcommands of this area (registered by app/cli.py)."""


def register(sub) -> None:
    """Add this area's subcommands to the `kyufu` parser."""
