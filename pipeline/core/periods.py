"""Reporting periods: ``YYYY``, ``YYYY-MM``, ``YYYYQn`` and ranges ``A/B``.

A period is a closed date interval. Flags move through their lifecycle period by period.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

from pipeline.core.errors import ConfigError

_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


@dataclass(frozen=True, order=True)
class Period:
    """A closed interval of dates with the label it was parsed from."""

    start: date
    end: date
    label: str

    def contains(self, day: date) -> bool:
        """True when ``day`` falls inside the period."""
        return self.start <= day <= self.end

    def __str__(self) -> str:
        return self.label


def _one(text: str) -> tuple[date, date]:
    if m := _YEAR.match(text):
        y = int(m.group(1))
        return date(y, 1, 1), date(y, 12, 31)
    if m := _QUARTER.match(text):
        y, q = int(m.group(1)), int(m.group(2))
        last = 3 * q
        return date(y, last - 2, 1), date(y, last, calendar.monthrange(y, last)[1])
    if m := _MONTH.match(text):
        y, mo = int(m.group(1)), int(m.group(2))
        if not 1 <= mo <= 12:
            raise ValueError(text)
        return date(y, mo, 1), date(y, mo, calendar.monthrange(y, mo)[1])
    if m := _DAY.match(text):
        d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return d, d
    raise ValueError(text)


def parse_period(text: str) -> Period:
    """Parse ``2024``, ``2025Q2``, ``2020-01``, ``2020-01-15`` or a range ``2020-01/2020-12``.

    Raises
    ------
    ConfigError
        When the text is none of these forms, or a range ends before it starts.
    """
    text = text.strip()
    try:
        if "/" in text:
            a, b = text.split("/", 1)
            start, end = _one(a)[0], _one(b)[1]
        else:
            start, end = _one(text)
    except ValueError as exc:
        raise ConfigError(
            f"Period {text!r} is not understood. Use YYYY, YYYYQn, YYYY-MM, YYYY-MM-DD "
            "or a range START/END, e.g. 2020-01/2020-12."
        ) from exc
    if end < start:
        raise ConfigError(f"Period {text!r} ends before it starts. Swap the two ends.")
    return Period(start, end, text)


def amw_period(code: int) -> Period:
    """Amazon Mining Watch period code: ``202400`` is 2024, ``202502`` is 2025 Q2."""
    year, part = divmod(int(code), 100)
    return parse_period(f"{year}" if part == 0 else f"{year}Q{part}")
