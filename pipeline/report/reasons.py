"""A flag's reason sentence and due-diligence clause in the reader's language.

Comply writes the English sentence (``reason``) and the values it was made from
(``reason_args``, JSON), plus a lifecycle note (``reason_note``, JSON) when the flag was not
seen or a suppression was lifted. The report fills the catalogue's template for the same rule
with those values, so the sentence says the same thing in es/pt/fr, numbers written the way
the reader writes them. Flags written before ``reason_args`` existed, or whose values do not
cover the current template, keep their English sentence.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pipeline.core.text import template_fields
from pipeline.report.i18n import Catalogue
from pipeline.report.markup import is_blank

log = logging.getLogger(__name__)

#: lifecycle notes written after the rule's sentence; the others come before it
_NOTES_AFTER = {"suppression_lifted"}
#: template values that are terms the catalogue can translate (section of the catalogue)
_TERMS = {"designation": "designation", "licence_kind": "licence_kind", "phase": "phase"}


def json_object(value: Any) -> dict[str, Any] | None:
    """A JSON-object column of a flag (``reason_args``, ``reason_note``) as a dict; None when
    blank or unreadable (logged), so the caller falls back to the English sentence."""
    if isinstance(value, Mapping):
        return dict(value)
    if is_blank(value):
        return None
    try:
        doc = json.loads(str(value))
    except ValueError:
        log.warning("unreadable JSON %r in a flag: keeping the English sentence", value)
        return None
    return doc if isinstance(doc, dict) else None


def _note(flag: Mapping[str, Any], cat: Catalogue) -> tuple[str, bool] | None:
    note = json_object(flag.get("reason_note"))
    template = cat.strings.get(f"reason_note.{note.get('kind')}") if note else None
    if note is None or template is None:
        return None
    return cat.fill(template, note), note.get("kind") in _NOTES_AFTER


def reason_text(flag: Mapping[str, Any], *, cat: Catalogue) -> str:
    """The flag's reason sentence in ``cat``'s language (with its lifecycle note, if any)."""
    english = "" if is_blank(flag.get("reason")) else str(flag["reason"])
    args = json_object(flag.get("reason_args"))
    template = cat.strings.get(f"reason.{flag.get('rule_id')}")
    also = flag.get("also_rule")
    if template is not None and isinstance(also, str) and also:
        # a title finding inside a protected area: both rules' sentences, in one flag
        second = cat.strings.get(f"reason.{also}")
        template = f"{template} {second}" if second is not None else None
    if args is None or template is None or not set(template_fields(template)) <= set(args):
        # older flags: the stored sentence beats a template with values it never had
        return english
    values = {k: cat.term(_TERMS[k], v) if k in _TERMS and isinstance(v, str) else v for k, v in args.items()}
    sentence = cat.fill(template, values)
    note = _note(flag, cat)
    if note is None:
        return sentence
    text, after = note
    return f"{sentence} {text}" if after else f"{text} {sentence}"


def clause_text(flag: Mapping[str, Any], *, cat: Catalogue) -> str:
    """The OECD / CRAFT / Forest Smart Mining clauses the flag's rule supports, in ``cat``'s
    language; in English, and for rules the catalogue lacks, the flag's own text (the wording
    of the rulebook version that raised it)."""
    own = "" if is_blank(flag.get("clause")) else str(flag["clause"])
    if cat.lang == "en" and own:
        return own
    also = flag.get("also_rule")
    keys = [f"clause.{flag.get('rule_id')}"] + ([f"clause.{also}"] if isinstance(also, str) and also else [])
    if not all(k in cat.strings for k in keys):
        return own
    return " ".join(cat.strings[k] for k in keys)
