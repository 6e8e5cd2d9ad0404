"""The query stage: a plan rendered as one SQL statement (request -> parse -> plan -> **query**).

Pure. Identifiers come only from the plan (so from the schema cache) and are
always quoted; every value from the request is a bound parameter, sent as
text and cast to the column's type by PostgreSQL, as PostgREST's untyped
literals are. PostgreSQL builds the JSON body.  render.py holds the shared
renderer; read, mutate and call build each kind of statement.
"""

from fluxbase.rest.query.call import call_statement
from fluxbase.rest.query.mutate import INSERTED, MUTATED, mutation_statement
from fluxbase.rest.query.read import planned_count_statement, read_statement
from fluxbase.rest.query.render import (
    RESPONSE_SETTINGS,
    Statement,
    explain_statement,
    function_call,
    quote_name,
)

__all__ = [
    "INSERTED",
    "MUTATED",
    "RESPONSE_SETTINGS",
    "Statement",
    "call_statement",
    "explain_statement",
    "function_call",
    "mutation_statement",
    "planned_count_statement",
    "quote_name",
    "read_statement",
]
