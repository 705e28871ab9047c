"""Escaping and small HTML pieces shared by the map, scorecards, index and e-mail.

Everything that reaches HTML goes through :func:`esc`. Besides HTML's own characters it
encodes those that matter inside a JavaScript template literal (`` ` ``, ``$``, ``\\``) and
Jinja's delimiters (``{``, ``}``, ``%``): the map never hands data to a template engine as
source (see :mod:`pipeline.report.verbatim`), and should a future element do so, escaped text
still reads as text there. NUL and bidi controls are shown as ``\\u202e``-style escapes
(:func:`visible`), so a name cannot reorder the text around it (``cod\\u202egnp.exe``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from typing import Any

_SCRIPT_AND_TEMPLATE = str.maketrans(
    {"`": "&#96;", "$": "&#36;", "\\": "&#92;", "{": "&#123;", "}": "&#125;", "%": "&#37;"}
)
#: NUL and the bidi controls (LRM, RLM, ALM, LRE..RLO, LRI..PDI): invisible, yet they hide or
#: reorder the characters around them
INVISIBLE = frozenset(
    ["\x00", "\u061c", "\u200e", "\u200f"]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
)
_VISIBLE = str.maketrans({c: f"\\u{ord(c):04x}" for c in INVISIBLE})

PAGE_CSS = (
    "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 8px;"
    "text-align:left;vertical-align:top}th{background:#f4f6f7}h1{font-size:1.4em}h2{font-size:1.15em}"
    ".sev-high{color:#c0392b}.sev-medium{color:#d35400}.sev-low{color:#b7950b}.muted{color:#777}"
)


def is_blank(value: object) -> bool:
    """True for None, NaN, NaT, pd.NA and empty strings."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        import pandas as pd

        return bool(pd.isna(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False


def visible(text: str) -> str:
    """``text`` with NUL and bidi controls written as escapes (U+202E -> ``\\u202e``)."""
    return text.translate(_VISIBLE)


def esc(value: object) -> str:
    """HTML-escape ``value`` (quotes too), the JS template-literal characters and Jinja's
    delimiters; NUL and bidi controls made :func:`visible`."""
    text = "" if is_blank(value) else visible(str(value))
    return html.escape(text, quote=True).translate(_SCRIPT_AND_TEMPLATE)


def rows_table(rows: Mapping[str, Any], *, css_class: str = "asm-popup") -> str:
    """A two-column table of label -> value; blank values are left out; both sides escaped."""
    cells = "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows.items() if not is_blank(v)
    )
    return f"<table class='{esc(css_class)}'>{cells}</table>"


def grid_table(header: Iterable[str], body: Iterable[Iterable[str]]) -> str:
    """A table whose cells are ALREADY-ESCAPED HTML fragments (build them with :func:`esc`)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def page(*, title: str, body: str, lang: str) -> str:
    """A complete standalone HTML page (no external resources). ``body`` is trusted HTML."""
    return (
        f"<!DOCTYPE html>\n<html lang='{esc(lang)}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{PAGE_CSS}</style></head>\n<body>{body}</body></html>\n"
    )
