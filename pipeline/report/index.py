"""The index page of an output folder: every AOI with links to its map and scorecards."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pipeline.core.atomic import write_text
from pipeline.report.i18n import catalogue
from pipeline.report.markup import esc, grid_table, page

log = logging.getLogger(__name__)


def render_index(entries: list[dict[str, Any]], *, lang: str = "en") -> str:
    """A page listing AOIs (entries as written by :func:`write_index`), each linking to
    ``<aoi_id>/map.html`` and, where there are sites, ``<aoi_id>/scorecards/index.html``."""
    cat = catalogue(lang)
    rows = []
    for e in sorted(entries, key=lambda e: str(e["name"])):
        links = f"<a href='{esc(e['aoi_id'])}/map.html'>{esc(cat.t('map.index_open'))}</a>"
        if e.get("scorecards"):
            href = f"{e['aoi_id']}/scorecards/index.html"
            links += f" · <a href='{esc(href)}'>{esc(cat.t('map.scorecard_link'))}</a>"
        rows.append(
            [
                esc(e["name"]),
                esc(cat.term("designation", e.get("designation"))),
                esc(e.get("country")),
                esc(e.get("flags", 0)),
                esc(cat.number(e.get("flagged_ha"), spec=",.1f")),
                links,
            ]
        )
    header = [
        esc(cat.t(k))
        for k in (
            "map.index_aoi",
            "map.index_designation",
            "map.index_country",
            "map.index_flags",
            "map.index_flagged_ha",
        )
    ] + [""]
    body = f"<h1>{esc(cat.t('map.index_title'))}</h1>{grid_table(header, rows)}"
    return page(title=cat.t("map.index_title"), body=body, lang=lang)


def write_index(out_dir: Path, *, lang: str = "en", current: dict[str, Any] | None = None) -> Path:
    """Merge ``current`` (``aoi_id``, ``name``, ``designation``, ``country``, ``flags``,
    ``flagged_ha``, ``scorecards``) into ``out_dir/index.json`` and write ``out_dir/index.html``."""
    store = out_dir / "index.json"
    entries: dict[str, dict[str, Any]] = {}
    if store.is_file():
        try:
            entries = {e["aoi_id"]: e for e in json.loads(store.read_text(encoding="utf-8"))}
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("index: rebuilding unreadable %s: %s", store, exc)
    if current is not None:
        entries[current["aoi_id"]] = current
    doc = [entries[k] for k in sorted(entries)]
    write_text(store, json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    return write_text(out_dir / "index.html", render_index(doc, lang=lang))
