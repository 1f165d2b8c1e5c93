"""arq jobs. Every job is idempotent and derived from a database row (the outbox)."""
