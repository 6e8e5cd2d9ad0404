"""The benchmarks' one way of writing results into docs/BENCHMARKS.md: only between markers.

Each benchmark owns a section between a begin and an end marker; a run replaces what is between
them and nothing else (the prose around the sections says how to read them, never what they show).
"""

from __future__ import annotations

from pathlib import Path


def write_generated_section(report: Path, section: str, begin: str, end: str, heading: str = "") -> None:
    """Replaces the section from `begin` to `end` (both in `section`); appends it, under
    `heading` when given, to a file that has no such section yet."""
    text = report.read_text() if report.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        report.write_text(head + section + rest.split(end, 1)[1])
        return
    title = f"## {heading}\n\n" if heading else ""
    report.write_text(text.rstrip("\n") + "\n\n" + title + section + "\n")
