"""Database plumbing: settings, pool, migrations and the embedded PostgreSQL."""
