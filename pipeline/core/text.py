"""Filling sentence templates: the flags' reasons in comply, and their translations in report.

Both must agree on what a missing value looks like (``?``), on an unbounded ratio (``∞``)
and on numbers that arrive as text, so they share these functions.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

MISSING = "?"
INFINITE = "∞"
_NUMERIC_TYPES = set("bcdoxXneEfFgG%")


def json_scalar(value: Any) -> Any:
    """``value`` as a JSON-safe scalar: numbers as numbers, dates as ISO text, blanks
    (None, NaN, NaT, pd.NA) as None, infinities as ``"inf"`` / ``"-inf"`` (JSON has none)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.datetime64 | pd.Timestamp | datetime | date):
        stamp = pd.Timestamp(value)
        return None if pd.isna(stamp) else stamp.date().isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value if isinstance(value, bool | int | float | str) else str(value)


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return MISSING


class _Formatter(string.Formatter):
    def __init__(self, *, decimal: str, group: str) -> None:
        super().__init__()
        # "," and "." swapped through a placeholder so "1,234.5" becomes "1.234,5"
        self._swap = None if (decimal, group) == (".", ",") else str.maketrans({",": "\0", ".": decimal})
        self._group = group

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, str) and format_spec[-1:] in _NUMERIC_TYPES:
            # numbers that travelled as text (a CSV, "inf" from json_scalar)
            try:
                value = float(value)
            except ValueError:
                return value  # a registry's "n/a" under a numeric format: keep the text
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return MISSING
        if isinstance(value, float) and math.isinf(value):
            return INFINITE if value > 0 else f"-{INFINITE}"
        try:
            out = format(value, format_spec)
        except (ValueError, TypeError):
            return str(value)
        if self._swap is not None and isinstance(value, int | float) and not isinstance(value, bool):
            out = out.translate(self._swap).replace("\0", self._group)
        return out


def template_fields(template: str) -> list[str]:
    """The field names a ``str.format`` template uses, in order, without repeats."""
    names = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    return list(dict.fromkeys(names))


def fill_template(template: str, values: Mapping[str, Any], *, decimal: str = ".", group: str = ",") -> str:
    """``template`` filled from ``values``.

    A missing, None or NaN value prints as ``?`` and an infinite one as ``∞``; numbers use the
    ``decimal`` and ``group`` (thousands) separators of the reader's language.
    """
    return _Formatter(decimal=decimal, group=group).vformat(template, (), _Blank(values))
