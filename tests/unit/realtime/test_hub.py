"""The hub's pure parts: the payload it builds and trims (visibility is decided in SQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from fluxbase.realtime.hub import TableInfo, change_data, select_columns
from fluxbase.realtime.listener import Change

NOTES = TableInfo(
    oid=1,
    schema="public",
    name='my "notes"',
    rls=True,
    full_identity=False,
    primary_key=("id", "tenant"),
    columns=(("id", "int8"), ("tenant", "uuid"), ("title", "text"), ("secret", "text")),
)
WHEN = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def change(kind: str, record: dict[str, object] | None, old: dict[str, object] | None) -> Change:
    return Change(1, 1, "public", 'my "notes"', kind, record, old, WHEN)  # type: ignore[arg-type]


def test_change_data_drops_ungranted_columns_and_keeps_only_the_key_of_old_rows() -> None:
    shown = ["id", "tenant", "title"]
    update = change_data(
        NOTES,
        change(
            "UPDATE",
            {"id": 1, "tenant": "t", "title": "new", "secret": "s"},
            {"id": 1, "tenant": "t", "title": "old", "secret": "s"},
        ),
        shown,
    )
    assert update["record"] == {"id": 1, "tenant": "t", "title": "new"}
    assert update["old_record"] == {"id": 1, "tenant": "t"}
    assert [c["name"] for c in update["columns"]] == shown
    assert update["commit_timestamp"] == "2026-01-02T03:04:05.678Z"
    delete = change_data(NOTES, change("DELETE", None, {"id": 2, "tenant": "t", "secret": "s"}), shown)
    assert delete["old_record"] == {"id": 2, "tenant": "t"} and "record" not in delete


def test_full_identity_without_rls_sends_the_granted_old_row() -> None:
    items = TableInfo(2, "public", "items", False, True, ("id",), (("id", "int4"), ("n", "int4")))
    data = change_data(items, change("DELETE", None, {"id": 1, "n": 5}), ["id", "n"])
    assert data["old_record"] == {"id": 1, "n": 5}


def test_select_keeps_only_the_chosen_columns() -> None:
    data = change_data(
        NOTES, change("INSERT", {"id": 1, "tenant": "t", "title": "x"}, None), ["id", "tenant", "title"]
    )
    trimmed = select_columns(data, frozenset({"title"}))
    assert trimmed["record"] == {"title": "x"}
    assert trimmed["columns"] == [{"name": "title", "type": "text"}]
