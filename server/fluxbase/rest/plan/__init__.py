"""The plan stage: a parsed request checked against the schema cache (request -> parse -> **plan**).

Pure: every table, column and relationship the request names is looked up
here, so the query stage only ever quotes names the cache vouched for, and
errors about names are answered before PostgreSQL sees anything.  The package
splits by concern: model (the plan values), read, relationships, mutate, call.
"""

from fluxbase.rest.plan.call import plan_call
from fluxbase.rest.plan.model import (
    JSON_TYPES,
    Argument,
    CallPlan,
    ColumnRef,
    Condition,
    Embed,
    EmbedNullCheck,
    Logic,
    MutatePlan,
    Ordering,
    OutputField,
    PlanSettings,
    Predicate,
    ReadPlan,
)
from fluxbase.rest.plan.mutate import body_columns, plan_mutation
from fluxbase.rest.plan.read import column_does_not_exist, plan_read, resolve_table

__all__ = [
    "JSON_TYPES",
    "Argument",
    "CallPlan",
    "ColumnRef",
    "Condition",
    "Embed",
    "EmbedNullCheck",
    "Logic",
    "MutatePlan",
    "Ordering",
    "OutputField",
    "PlanSettings",
    "Predicate",
    "ReadPlan",
    "body_columns",
    "column_does_not_exist",
    "plan_call",
    "plan_mutation",
    "plan_read",
    "resolve_table",
]
