"""Compliance rules: six small named functions, versioned, with thresholds from config.

Each rule turns detections (and sites, the AOI) into *findings*: one row per problem with the
offending geometry, hectares and detection ids. Areas and distances are measured in the
metric CRS of the inputs (the AOI's equal-area CRS), never in degrees.
``pipeline.comply.flags`` turns findings into flags; every flag carries the rule's id and
version, the rulebook version, the thresholds used and the due-diligence clause.

The rules partition mining: a hectare of mining inside a title that allows extraction raises
nothing; inside a title that does not, ``activity_without_valid_licence``; outside every title,
``clearing_outside_licence`` when within ``near_site_m`` of an extraction title, else
``unregistered_mining``. No hectare of registry-joined mining falls between two rules.

This module is the rulebook's one public address; the code lives by job:

* :mod:`~pipeline.comply.rulebook`: ids, versions, wording and thresholds of every rule;
* :mod:`~pipeline.comply.findings`: the geometry the area rules share;
* :mod:`~pipeline.comply.titles`: which titles allow extraction, on which day;
* :mod:`~pipeline.comply.protected_area_rules`, :mod:`~pipeline.comply.title_rules`,
  :mod:`~pipeline.comply.river_rules`: the rules, one module per input they read.
"""

from __future__ import annotations

from collections.abc import Callable

import geopandas as gpd

from pipeline.comply.findings import FINDING_COLUMNS, cell_key
from pipeline.comply.protected_area_rules import mining_in_protected_area
from pipeline.comply.river_rules import turbidity_downstream
from pipeline.comply.rulebook import RULEBOOK_VERSION, RULES, Rule
from pipeline.comply.title_rules import (
    activity_without_valid_licence,
    clearing_outside_licence,
    compliant_sites,
    registry_rules,
    unregistered_mining,
)
from pipeline.comply.titles import as_of, extraction_allowed

__all__ = [
    "FINDING_COLUMNS",
    "RULEBOOK_VERSION",
    "RULES",
    "Rule",
    "RuleFunction",
    "activity_without_valid_licence",
    "as_of",
    "cell_key",
    "clearing_outside_licence",
    "compliant_sites",
    "extraction_allowed",
    "mining_in_protected_area",
    "registry_rules",
    "turbidity_downstream",
    "unregistered_mining",
]

RuleFunction = Callable[..., gpd.GeoDataFrame]
