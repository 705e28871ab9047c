"""User-facing strings: one TOML catalogue per language in ``pipeline/data/i18n/``.

Every language file has the same keys as ``en.toml`` (a test checks it). Look strings up with
dotted keys: ``cat.t("field.reason")``, ``cat.t("map.flag_count", n=3)``.
"""

from __future__ import annotations

import functools
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.core.text import fill_template
from pipeline.report.markup import is_blank

LANGUAGES = ("en", "es", "pt", "fr")
#: registries without a phase table write their licence status as phase and kind too
_TERM_FALLBACK = {"licence_kind": ("licence_status",), "phase": ("licence_status",)}


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

    def fill(self, template: str, values: Mapping[str, Any]) -> str:
        """``template`` filled from ``values`` with this language's number separators; a
        missing value prints as ``?`` (see :func:`pipeline.core.text.fill_template`)."""
        return fill_template(
            template,
            values,
            decimal=self.strings.get("number.decimal", "."),
            group=self.strings.get("number.group", ","),
        )

    def number(self, value: object, *, spec: str = ",.2f") -> str:
        """``value`` formatted with ``spec`` and this language's decimal and thousands
        separators (``1,234.50`` / ``1.234,50`` / ``1\u202f234,50``); blank for no value."""
        if is_blank(value):
            return ""
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return str(value)
        return self.fill("{v:" + spec + "}", {"v": number})

    def ha(self, value: object) -> str:
        """Hectares with two decimals in this language's number format."""
        return self.number(value, spec=",.2f")

    def term(self, section: str, value: object) -> str:
        """Translate a free-text term from data (an AOI designation, a registry's licence kind
        or phase), looked up in lower case in ``section`` and then in the sections it falls
        back to; the data's own spelling when the catalogue has no other word."""
        if is_blank(value):
            return ""
        text = str(value)
        code = text.strip().lower()
        for name in (section, *_TERM_FALLBACK.get(section, ())):
            translated = self.strings.get(f"{name}.{code}")
            if translated is not None:
                return translated if translated != code else text
        return text

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


def aoi_name_in(names: Mapping[str, str] | None, *, lang: str, default: str) -> str:
    """The AOI's name for readers of ``lang``: ``names[lang]`` (the AOI file's ``"names"``),
    else ``default`` (its own name)."""
    chosen = (names or {}).get(lang)
    return chosen if isinstance(chosen, str) and chosen.strip() else default


def named_reason_args(value: Any, *, aoi_name: str) -> Any:
    """A flag's or alert's ``reason_args`` (dict or JSON text) with ``aoi_name`` set to the
    reader's name of the AOI, so the translated sentence names it in the reader's language;
    values without ``aoi_name`` (or unreadable ones) are returned unchanged."""
    args = value
    if isinstance(value, str):
        try:
            args = json.loads(value)
        except ValueError:
            return value
    if not isinstance(args, Mapping) or "aoi_name" not in args:
        return value
    return {**args, "aoi_name": aoi_name}
