"""The rulebook: each compliance rule's id, version, severity, wording and thresholds.

Kept apart from the rule functions so that turning findings into flags
(``pipeline.comply.flags``) and the report's translations can read what a rule says without
loading the geometry that decides when it fires.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.config import ComplyParams

RULEBOOK_VERSION = "2026.11.3"


@dataclass(frozen=True)
class Rule:
    """A compliance rule's identity, wording and the thresholds it reads."""

    rule_id: str
    version: str
    """Bumped whenever what the rule fires on changes."""
    severity: str
    """info, low, medium, high."""
    reason: str
    """One-sentence reason, ``str.format`` fields from the flag's columns."""
    clause: str
    """The due-diligence clauses the rule supports (OECD DDG Annex II, CRAFT, Forest Smart Mining)."""
    thresholds: tuple[str, ...] = ()
    """Names of the :class:`~pipeline.core.config.ComplyParams` fields the rule reads."""

    def threshold_text(self, params: ComplyParams) -> str:
        """``name=value`` pairs of the thresholds, as written into every flag."""
        return ", ".join(f"{name}={getattr(params, name):g}" for name in self.thresholds)


_OECD = "OECD Due Diligence Guidance for Minerals, Annex II"
RULES: dict[str, Rule] = {
    r.rule_id: r
    for r in [
        Rule(
            "mining_in_protected_area",
            "2",  # v2: severity from the protection category; said once with title rules
            "high",
            "{area_ha:,.1f} ha of mining detected inside {aoi_name} ({designation}), "
            "first seen {first_seen}, last seen {last_seen}.",
            f"{_OECD} (serious abuses; illegal extraction in protected areas and indigenous "
            "territories); CRAFT module 3 (legitimacy of the mining area); Forest Smart Mining "
            "principle: no-go zones for protected areas.",
            ("min_flag_area_ha", "footprint_cell_deg"),
        ),
        Rule(
            "clearing_outside_licence",
            "1",
            "medium",
            "{area_ha:,.1f} ha of mining within {near_site_m:,.0f} m of title {site_id} but "
            "outside its licensed polygon, last seen {last_seen}.",
            f"{_OECD} (illegal extraction, paragraph on legitimacy of mining); CRAFT module 3 "
            "(mining only inside the legal title); Forest Smart Mining principle: footprint "
            "limited to the licensed area.",
            ("near_site_m", "min_flag_area_ha"),
        ),
        Rule(
            "unregistered_mining",
            "1",
            "high",
            "{area_ha:,.1f} ha of mining with no title that allows extraction within "
            "{near_site_m:,.0f} m, last seen {last_seen}.",
            f"{_OECD} (informal / illegal extraction, risk of conflict financing); CRAFT "
            "module 1 (identification of the producer) and module 3 (legitimacy).",
            ("near_site_m", "min_flag_area_ha", "footprint_cell_deg"),
        ),
        Rule(
            "activity_without_valid_licence",
            "1",
            "high",
            "{area_ha:,.1f} ha of mining inside title {site_id}, whose phase '{phase}' "
            "({licence_kind}) does not allow extraction, last seen {last_seen}.",
            f"{_OECD} (illegal extraction without a valid title); CRAFT module 3 (legal "
            "mining title in force).",
            ("min_flag_area_ha",),
        ),
        Rule(
            "turbidity_downstream",
            "1",
            "medium",
            "River turbidity downstream of site {site_id} is {downstream_fnu:,.0f} FNU, "
            "{ratio:,.1f}x the {upstream_fnu:,.0f} FNU upstream.",
            f"{_OECD} (environmental harm: sediment and mercury release); CRAFT module 5 "
            "(environment); Forest Smart Mining principle: water management.",
            ("turbidity_ratio", "turbidity_floor_fnu"),
        ),
        Rule(
            "compliant",
            "1",
            "info",
            "Title {site_id} allows extraction and no mining was detected outside it.",
            "OECD Due Diligence Guidance Step 2 (risk assessment): no red flag found for this "
            "site in the period; CRAFT module 3 (legal title in force).",
        ),
    ]
}
