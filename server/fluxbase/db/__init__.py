"""The database layer: pool, the role-switched transaction, embedded PostgreSQL, migrations."""
