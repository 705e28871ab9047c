"""User-facing strings: one TOML catalogue per language in ``pipeline/data/i18n/``.

Every language file has the same keys as ``en.toml`` (a test checks it). Look strings up with
dotted keys: ``cat.t("field.reason")``, ``cat.t("map.flag_count", n=3)``.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from pipeline.errors import ConfigError
from pipeline.text import fill_template

LANGUAGES = ("en", "es", "pt", "fr")


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


@dataclass(frozen=True)
class Catalogue:
    """The strings of one language."""

    lang: str
    """ISO 639-1 code: en, es, pt, fr."""
    strings: dict[str, str]
    """Dotted key -> text with ``{placeholders}``."""

    def t(self, key: str, **values: Any) -> str:
        """The text for ``key`` with ``values`` filled in (plain text, not yet HTML-escaped)."""
        try:
            text = self.strings[key]
        except KeyError:
            raise KeyError(
                f"No string '{key}' in the {self.lang} catalogue; add it to every i18n/*.toml."
            ) from None
        return text.format(**values) if values else text

    def number(self, value: object, spec: str = ",.2f") -> str:
        """``value`` formatted with ``spec`` and this language's decimal and thousands
        separators (``1,234.50`` / ``1.234,50`` / ``1\u202f234,50``); blank for no value."""
        if value is None or value == "":
            return ""
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return str(value)
        if number != number:  # NaN
            return ""
        return fill_template(
            "{v:" + spec + "}",
            {"v": number},
            decimal=self.strings.get("number.decimal", "."),
            group=self.strings.get("number.group", ","),
        )

    def ha(self, value: object) -> str:
        """Hectares with two decimals in this language's number format."""
        return self.number(value, ",.2f")

    def term(self, section: str, value: object) -> str:
        """Translate a free-text term from data (an AOI designation, a registry's licence kind)
        looked up in lower case; the data's own spelling when the catalogue has no other word."""
        if not isinstance(value, str):
            return "" if value is None or value != value else str(value)  # None, NaN
        code = value.strip().lower()
        translated = self.strings.get(f"{section}.{code}", code)
        return translated if translated != code else value

    def label(self, section: str, value: object) -> str:
        """Translate a code such as a rule id or severity; unknown codes are returned as they are."""
        return self.strings.get(f"{section}.{value}", str(value))


@functools.cache
def catalogue(lang: str) -> Catalogue:
    """Load the catalogue of ``lang`` (cached).

    Raises
    ------
    ConfigError
        When ``lang`` is not one of :data:`LANGUAGES`.
    """
    if lang not in LANGUAGES:
        raise ConfigError(f"Language '{lang}' is not available. Use one of: {', '.join(LANGUAGES)}.")
    text = (files("pipeline") / "data" / "i18n" / f"{lang}.toml").read_text(encoding="utf-8")
    return Catalogue(lang=lang, strings=_flatten(tomllib.loads(text)))
