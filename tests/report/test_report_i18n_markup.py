"""Catalogues and escaping."""

from __future__ import annotations

import html
import re
import string

import pytest

from pipeline.core.errors import ConfigError
from pipeline.report.i18n import LANGUAGES, catalogue
from pipeline.report.markup import esc, visible


def test_unknown_language_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="en, es, pt, fr"):
        catalogue("de")


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_every_catalogue_has_the_same_keys_and_placeholders(lang: str) -> None:
    en, other = catalogue("en").strings, catalogue(lang).strings
    assert set(other) == set(en)
    fields = string.Formatter()
    for key, text in en.items():
        want = {f for _, f, _, _ in fields.parse(text) if f}
        got = {f for _, f, _, _ in fields.parse(other[key]) if f}
        assert got == want, key
    # translated, not copied: most strings differ from English
    same = [k for k in en if en[k] == other[k]]
    assert len(same) < 0.3 * len(en), same


def test_missing_key_names_the_fix() -> None:
    with pytest.raises(KeyError, match="add it to every"):
        catalogue("en").t("map.no_such_key")


@pytest.mark.parametrize(
    ("raw", "forbidden"),
    [
        ("<img src=x onerror=alert(1)>", "<"),
        ("`${alert(1)}`", "`"),
        ("${x}", "$"),
        ("a\\u0041", "\\"),
        ("\"'", '"'),
        ("{{ 7*7 }}", "{"),
        ("{% raw %}", "%"),
        ("{#", "{"),
    ],
)
def test_esc_leaves_no_html_or_template_literal_syntax(raw: str, forbidden: str) -> None:
    out = esc(raw)
    assert forbidden not in out
    assert re.fullmatch(r"[^<>`$\\\"'{}%]*", out)


def test_esc_shows_bidi_controls_and_nul() -> None:
    # U+202E would show "cod\u202egnp.exe" as "codexe.png"; NUL would cut the name short
    out = esc("cod\u202egnp.exe\x00 \u2066x\u2069 \u200f")
    assert html.unescape(out) == "cod\\u202egnp.exe\\u0000 \\u2066x\\u2069 \\u200f"
    assert visible("Terra Indígena 1 ← ok") == "Terra Indígena 1 ← ok"


def test_esc_blank_values() -> None:
    assert esc(None) == esc(float("nan")) == ""
    assert esc(3.5) == "3.5"
