"""Municipal staff: accounts, roles, sessions and the console."""
