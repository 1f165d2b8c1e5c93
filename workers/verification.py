"""Jobs of this area (collected by workers/settings.py)."""

JOBS: list = []
CRON_JOBS: list = []
