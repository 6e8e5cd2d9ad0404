"""quote_ident: any name reads as exactly that name in SQL text, never as more SQL."""

from __future__ import annotations

import pytest

from fluxbase.db.identifiers import quote_ident


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("films", '"films"'),
        ("Mixed Case", '"Mixed Case"'),
        ('a"b', '"a""b"'),
        ('"; drop table films; --', '"""; drop table films; --"'),
        ("", '""'),
    ],
)
def test_quote_ident_doubles_quotes_and_wraps(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted
