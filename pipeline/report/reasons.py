"""A flag's reason sentence and due-diligence clause in the reader's language.

Comply writes the English sentence (``reason``) and the values it was made from
(``reason_args``, JSON), plus a lifecycle note (``reason_note``, JSON) when the flag was not
seen or a suppression was lifted. The report fills the catalogue's template for the same rule
with those values, so the sentence says the same thing in es/pt/fr, numbers written the way
the reader writes them. Flags written before ``reason_args`` existed keep their English
sentence.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pipeline.report.i18n import Catalogue
from pipeline.report.markup import is_blank
from pipeline.text import fill_template

log = logging.getLogger(__name__)

#: lifecycle notes written after the rule's sentence; the others come before it
_NOTES_AFTER = {"suppression_lifted"}
#: template values that are terms the catalogue can translate (section of the catalogue)
_TERMS = {"designation": "designation", "licence_kind": "licence_kind"}


def _json(value: Any) -> dict[str, Any] | None:
    if isinstance(value, Mapping):
        return dict(value)
    if is_blank(value):
        return None
    try:
        doc = json.loads(str(value))
    except ValueError:
        log.warning("unreadable reason values %r: keeping the English sentence", value)
        return None
    return doc if isinstance(doc, dict) else None


def _fill(cat: Catalogue, key: str, values: Mapping[str, Any]) -> str | None:
    template = cat.strings.get(key)
    if template is None:
        return None
    return fill_template(
        template,
        values,
        decimal=cat.strings.get("number.decimal", "."),
        group=cat.strings.get("number.group", ","),
    )


def reason_text(flag: Mapping[str, Any], cat: Catalogue) -> str:
    """The flag's reason sentence in ``cat``'s language (with its lifecycle note, if any)."""
    english = "" if is_blank(flag.get("reason")) else str(flag["reason"])
    args = _json(flag.get("reason_args"))
    if args is None:
        return english
    values = dict(args)
    for name, section in _TERMS.items():
        if isinstance(values.get(name), str):
            values[name] = cat.term(section, values[name])
    sentence = _fill(cat, f"reason.{flag.get('rule_id')}", values)
    if sentence is None:
        return english
    note = _json(flag.get("reason_note"))
    note_text = _fill(cat, f"reason_note.{note.get('kind')}", note) if note else None
    if not note_text:
        return sentence
    after = note is not None and note.get("kind") in _NOTES_AFTER
    return f"{sentence} {note_text}" if after else f"{note_text} {sentence}"


def clause_text(flag: Mapping[str, Any], cat: Catalogue) -> str:
    """The OECD / CRAFT / Forest Smart Mining clauses the flag's rule supports, in ``cat``'s
    language (the flag's own English text when the catalogue has no entry for the rule)."""
    own = "" if is_blank(flag.get("clause")) else str(flag["clause"])
    return cat.strings.get(f"clause.{flag.get('rule_id')}", own) if cat.lang != "en" or not own else own
