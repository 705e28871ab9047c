"""CSV cells a spreadsheet shows as text (OWASP "CSV injection").

Excel, LibreOffice and Google Sheets read a cell starting with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return as a formula: a registry name ``=HYPERLINK("http://x","open")`` becomes a
link, ``=cmd|' /C calc'!A0`` a command. Such *string* cells get a leading ``'``, which the
spreadsheet takes as "this is text" and does not show. Numbers stay numbers: a float column
of negative longitudes is written as it is, and so is a string that is only a decimal number
(``-12.5``, as a table read with ``dtype=str`` holds it), which no spreadsheet evaluates. NUL and
bidi controls become visible escapes (:func:`pipeline.report.markup.visible`). A carriage
return inside a cell becomes a line feed: our writers end lines with ``\\n`` and so do not
quote a cell for a bare ``\\r``, which spreadsheets and Python's csv module read as the end of
the row; a cell with ``\\n`` is quoted and stays one cell.

Every CSV the report writes goes through :func:`csv_text` or :func:`csv_cell`.
"""

from __future__ import annotations

import re

import pandas as pd

from pipeline.report.markup import visible

#: first characters that make a spreadsheet evaluate a cell
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def csv_cell(value: object) -> object:
    """``value`` safe for a spreadsheet: strings made visible and, when they would start a
    formula, prefixed with ``'``; anything else (numbers, None) unchanged."""
    if not isinstance(value, str):
        return value
    text = visible(value)
    guard = text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "'" + text if guard else text


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with :func:`csv_cell` applied to every text column's cells."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column].dtype):
            out[column] = out[column].map(csv_cell, na_action="ignore")
    return out


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text (no index, ``\\n`` line ends) with every cell :func:`csv_cell`-safe."""
    return csv_safe(frame).to_csv(index=False, lineterminator="\n")


def csv_unguard(value: object) -> object:
    """Undo :func:`csv_cell`'s ``'`` on a cell read back from a CSV we wrote (``'=x`` -> ``=x``);
    anything else unchanged."""
    if isinstance(value, str) and len(value) > 1 and value[0] == "'" and value[1:].startswith(FORMULA_START):
        return value[1:]
    return value
