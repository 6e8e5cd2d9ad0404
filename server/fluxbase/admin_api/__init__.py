"""The admin API at /api/v1/admin/*: what the dashboard manages, behind an administrator session."""
