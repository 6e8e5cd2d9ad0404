"""JSON Schemas for client->server messages accept what the clients send and refuse garbage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas" / "realtime"


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


VALID: list[tuple[str, Any]] = [
    ("message-v1", {"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": None}),
    ("message-v2", ["1", "1", "realtime:room1", "phx_join", {}]),
    (
        "phx_join",
        {
            "config": {
                "broadcast": {"self": False, "ack": "true", "replay": {"since": 0, "limit": 10}},
                "presence": {"key": "", "enabled": False},
                "postgres_changes": [
                    {"event": "INSERT", "schema": "public", "table": "posts", "filter": "id=eq.1"},
                    {"event": "*", "schema": "public"},
                    None,
                ],
                "private": False,
            },
            "access_token": "jwt",
        },
    ),
    ("access_token", {"access_token": "jwt"}),
    ("broadcast", {"type": "broadcast", "event": "cursor", "payload": {"x": 1}}),
    ("presence", {"type": "presence", "event": "track", "payload": {"online_at": "now"}}),
    ("presence", {"type": "presence", "event": "untrack"}),
    ("heartbeat", [None, "5", "phoenix", "heartbeat", {}]),
    ("phx_leave", {}),
]

INVALID: list[tuple[str, Any]] = [
    ("message-v1", {"topic": "phoenix", "payload": {}}),
    ("message-v2", [None, "1", "phoenix", "heartbeat"]),
    ("phx_join", {"config": {"postgres_changes": [{"event": "UPSERT"}]}}),
    ("phx_join", {"config": {"private": "yes"}}),
    ("phx_join", {"config": {"presence": {"key": ["x"]}}}),
    ("access_token", {}),
    ("broadcast", {"type": "presence", "event": "x"}),
    ("presence", {"type": "presence", "event": "track", "payload": "online"}),
    ("heartbeat", [None, "5", "realtime:room1", "heartbeat", {}]),
    ("phx_leave", {"reason": "bye"}),
]


@pytest.mark.parametrize(("name", "instance"), VALID)
def test_valid_messages(name: str, instance: Any) -> None:
    validator(name).validate(instance)


@pytest.mark.parametrize(("name", "instance"), INVALID)
def test_invalid_messages(name: str, instance: Any) -> None:
    assert not validator(name).is_valid(instance)
