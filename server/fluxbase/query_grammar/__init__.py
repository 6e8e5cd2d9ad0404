"""The query-string grammar shared below the data API (rest/) and realtime (realtime/)."""
