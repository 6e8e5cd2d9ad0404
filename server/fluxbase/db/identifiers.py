"""SQL identifiers in statement text: the one quoting every service uses (rest, realtime).

Names reach SQL only after a service checked them against the catalog; quoting still makes any
name (mixed case, spaces, quotes) read as exactly that name and nothing else.
"""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """`name` as a double-quoted SQL identifier, with embedded quotes doubled."""
    return '"' + name.replace('"', '""') + '"'
