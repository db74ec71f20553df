"""One rule for every CSV the service writes: a text cell a spreadsheet would read as a
formula is defused (OWASP "CSV injection").

A text cell starting with `=`, `+`, `-`, `@`, TAB or CR gets a leading single quote, so
`=HYPERLINK(...)` in a store or shopper name shows as text. Only text cells are escaped: an
integer or a time is written as it is, so a negative amount (`-1500`) stays a number the
spreadsheet can add up. Decision recorded in docs/security.md (API10).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    """The value as it may go into a CSV cell: text defused, anything else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_LEADS):
        return "'" + value
    return value


def row(values: Iterable[object]) -> list[object]:
    return [cell(v) for v in values]


def write_rows(header: Sequence[str], rows: Iterable[Iterable[object]]) -> str:
    """A CSV document (CRLF lines): the header, then each row with its text cells defused."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(row(header))
    for values in rows:
        writer.writerow(row(values))
    return out.getvalue()


def write_dicts(columns: Sequence[str], lines: Iterable[Mapping[str, object]]) -> str:
    """As `write_rows`, for lines keyed by column name (a missing key is an empty cell)."""
    return write_rows(columns, ([line.get(c, "") for c in columns] for line in lines))
