"""Application-user auth, GoTrue-compatible: the rules live in sql/2*_auth_*.sql, this is the wire."""
