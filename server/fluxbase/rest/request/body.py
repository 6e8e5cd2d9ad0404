"""Request bodies that are not JSON, read into what a JSON body would have been (parse stage)."""

from __future__ import annotations

import csv
import io

from fluxbase.rest.errors import pgrst_error


def csv_rows(raw: bytes) -> list[dict[str, str | None]]:
    """A text/csv body as PostgREST reads it: a header line, then one object per line.

    Values stay text (PostgreSQL casts them to the columns' types); `NULL` means null.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise pgrst_error("PGRST102", "The CSV body is not valid UTF-8") from error
    try:
        lines = [line for line in csv.reader(io.StringIO(text)) if line]
    except csv.Error as error:
        raise pgrst_error("PGRST102", f"Invalid CSV body: {error}") from error
    if not lines:
        return []
    header, *records = lines
    rows = []
    for record in records:
        if len(record) != len(header):
            raise pgrst_error("PGRST102", "Every line of a CSV body must have as many fields as its header")
        rows.append(
            {key: None if value == "NULL" else value for key, value in zip(header, record, strict=True)}
        )
    return rows
