"""Application-user auth GoTrue-compatible: the rules live in sql/20_auth.sql, this is the wire."""
