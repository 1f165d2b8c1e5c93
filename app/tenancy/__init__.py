"""Tenancy: municipalities (the tenants), their codes, and the one transaction helper that scopes every
database access to one municipality through row-level security."""
