"""Storage: buckets and objects, metadata in SQL under RLS, bytes in a backend (local disk or S3)."""
