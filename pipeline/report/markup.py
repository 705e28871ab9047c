"""Escaping and small HTML pieces shared by the map, scorecards, index and e-mail.

Everything that reaches HTML goes through :func:`esc`. It also encodes the characters that
matter inside a JavaScript template literal (`` ` ``, ``$``, ``\\``), because folium places
popup HTML in one: html.escape alone would let a site name like ``${alert(1)}`` run.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from typing import Any

_JS_LITERAL = str.maketrans({"`": "&#96;", "$": "&#36;", "\\": "&#92;"})

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


def esc(value: object) -> str:
    """HTML-escape ``value`` (quotes too) and the JS template-literal characters."""
    return html.escape("" if is_blank(value) else str(value), quote=True).translate(_JS_LITERAL)


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
