"""Filling sentence templates: the flags' reasons in comply, and their translations in report.

Both must agree on what a missing value looks like (``?``) and both must survive a numeric
format applied to one (``{area_ha:.1f}`` with no area), so they share this one function.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from typing import Any

MISSING = "?"


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
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return MISSING
        try:
            out = format(value, format_spec)
        except (ValueError, TypeError):
            # a numeric format applied to a text value (a registry gave "n/a"): keep the text
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

    A missing, None or NaN value prints as ``?``; numbers use the ``decimal`` and ``group``
    (thousands) separators of the reader's language.
    """
    return _Formatter(decimal=decimal, group=group).vformat(template, (), _Blank(values))
