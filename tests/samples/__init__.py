"""Sample-row factories per area; tests/tenancy_samples.py imports every module here."""
