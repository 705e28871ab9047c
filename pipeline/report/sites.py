"""A registered site as the map and its scorecard both show it: file-safe slug, licence facts,
and the state its flags and licence give it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import geopandas as gpd

from pipeline.comply.flags import SEVERITY_ORDER
from pipeline.report.i18n import Catalogue
from pipeline.report.markup import is_blank

INVALID_LICENCE = {"expired", "suspended", "none", "revoked"}


def site_slug(site_id: str) -> str:
    """File-name-safe, collision-free name for a site id (``858075/2001`` ->
    ``858075-2001-<6 hex>``)."""
    base = re.sub(r"[^A-Za-z0-9]+", "-", str(site_id)).strip("-")[:60] or "site"
    return f"{base}-{hashlib.sha256(str(site_id).encode()).hexdigest()[:6]}"


def site_facts(site: Mapping[str, Any], *, cat: Catalogue) -> dict[str, Any]:
    """Label -> value of a registered site's identity and licence, as the map's site popup
    and the scorecard's licence table both show them (registry terms translated)."""
    sid = site["site_id"]
    return {
        cat.t("field.title_id"): sid,
        cat.t("field.site"): site.get("name") if site.get("name") != sid else None,
        cat.t("field.operator"): site.get("operator"),
        cat.t("field.licence"): cat.term("licence_kind", site.get("licence_kind")),
        cat.t("field.licence_status"): cat.term("licence_status", site.get("licence_status")),
        cat.t("field.phase"): cat.term("phase", site.get("phase")),
        cat.t("field.mineral"): site.get("mineral"),
        cat.t("field.registry"): site.get("registry"),
    }


def licence_allows(site: Mapping[str, Any]) -> bool:
    """Whether the title allows extraction: its phase does and its licence is in force."""
    ok = site.get("allows_extraction", True)
    return bool(True if ok is None else ok) and str(site.get("licence_status")).lower() not in INVALID_LICENCE


def licence_line(site: Mapping[str, Any], *, cat: Catalogue) -> str:
    """ "Licence: exploration permit, no extraction allowed": the title and what it allows."""
    kind = cat.term("licence_kind", site.get("licence_kind")) or cat.t("unknown")
    status = str(site.get("licence_status")).lower()
    if status in INVALID_LICENCE:
        text = cat.t("scorecard.licence_status_no", kind=kind, status=cat.term("licence_status", status))
    else:
        text = cat.t("scorecard.licence_ok" if licence_allows(site) else "scorecard.licence_no", kind=kind)
    return cat.t("scorecard.licence_line", text=text)


def activity_line(ha: float, periods: list[str], *, span: str, cat: Catalogue) -> str:
    """ "Mining observed: none in 2018–2025Q3" or "Mining observed: 12.50 ha in 2019, 2020"."""
    if ha <= 0 or not periods:
        return cat.t("scorecard.activity_none", span=span or cat.t("unknown"))
    return cat.t("scorecard.activity_seen", ha=cat.ha(ha), periods=", ".join(periods))


def period_span(labels: Iterable[object]) -> str:
    """ "2018–2025Q3": the first and last period label (text order), or the one label."""
    found = sorted({str(p) for p in labels if not is_blank(p)})
    if not found:
        return ""
    return found[0] if len(found) == 1 else f"{found[0]}–{found[-1]}"


def site_states(sites: gpd.GeoDataFrame, flags: gpd.GeoDataFrame) -> list[str]:
    """Per site: ``flagged_<worst severity>`` when mining is flagged on or by it, else
    ``no_extraction_allowed`` when the title does not allow extraction or the licence is
    expired/suspended (no mining seen, but no licence to mine either), else ``compliant``:
    licence in force and nothing flagged."""
    real = flags[flags["rule_id"] != "compliant"]
    worst: dict[str, str] = {}
    for sid, sev in zip(real["site_id"], real["severity"], strict=True):
        if isinstance(sid, str) and SEVERITY_ORDER.get(sev, 0) > SEVERITY_ORDER.get(worst.get(sid, ""), 0):
            worst[sid] = sev
    allows = sites["allows_extraction"] if "allows_extraction" in sites else [True] * len(sites)
    out = []
    for sid, ok, status in zip(sites["site_id"], allows, sites["licence_status"], strict=True):
        if sid in worst:
            out.append(f"flagged_{worst[sid]}")
        elif not licence_allows({"allows_extraction": ok, "licence_status": status}):
            out.append("no_extraction_allowed")
        else:
            out.append("compliant")
    return out


def scorecard_links(sites: gpd.GeoDataFrame | None, *, prefix: str = "scorecards/") -> dict[str, str]:
    """site_id -> relative link of its scorecard page (from the AOI folder)."""
    if sites is None:
        return {}
    return {sid: f"{prefix}{site_slug(sid)}.html" for sid in sites["site_id"]}
