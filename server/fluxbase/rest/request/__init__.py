"""Parse stage of the data API (request -> parse -> plan -> query -> response), by concern.

As PostgREST's ApiRequest/ modules: `api_request` assembles an ApiRequest from the request line
and headers using `action` (method and path kind), `select`, `filters`, `order`, `ranges`
(limit, offset, Range), `columns`, `preferences` (Prefer) and `media` (Accept, Content-Type).
`syntax` reports every grammar's failure as PGRST100. The grammar they read with (cursor,
names, the filter operators) is `fluxbase.query_grammar`, shared with realtime.
"""
