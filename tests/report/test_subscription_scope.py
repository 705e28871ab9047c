"""Subscriptions name AOIs by id, by country or by collection (issue 19): an alert matches when
its AOI is named by any of them; none set = every AOI."""

from __future__ import annotations

import pytest

from pipeline.core.errors import ConfigError
from pipeline.report.subscriptions import parse_subscriptions


def _alert(aoi_id: str, country: str | None, collection: str | None) -> dict[str, object]:
    return {"aoi_id": aoi_id, "aoi_country": country, "aoi_collection": collection,
            "rule_id": "mining_in_protected_area", "severity": "high"}  # fmt: skip


ALERTS = {
    "munduruku": _alert("munduruku", "Brazil", None),
    "it-pe1": _alert("it-pe1", "Peru", "amazon-indigenous-territories"),
    "it-br1": _alert("it-br1", "Brazil", "amazon-indigenous-territories"),
    "pe-reserve": _alert("pe-reserve", "Peru", None),
    "old": {"aoi_id": "old", "rule_id": "mining_in_protected_area", "severity": "high"},  # before issue 19
}


@pytest.mark.parametrize(
    ("scope", "wanted"),
    [
        ({}, set(ALERTS)),
        ({"aois": ["munduruku"]}, {"munduruku"}),
        ({"countries": ["PERU"]}, {"it-pe1", "pe-reserve"}),
        ({"collections": ["amazon-indigenous-territories"]}, {"it-pe1", "it-br1"}),
        ({"aois": ["munduruku"], "countries": ["peru"]}, {"munduruku", "it-pe1", "pe-reserve"}),
    ],
)
def test_an_alert_matches_when_its_aoi_is_named_by_id_country_or_collection(
    scope: dict[str, list[str]], wanted: set[str]
) -> None:
    [sub] = parse_subscriptions([{"name": "ngo", "email": ["a@b.org"], **scope}])
    assert {k for k, a in ALERTS.items() if sub.wants(a)} == wanted


def test_a_country_that_is_not_text_is_refused() -> None:
    with pytest.raises(ConfigError, match="'countries' must be a string or a list of strings"):
        parse_subscriptions([{"name": "ngo", "email": ["a@b.org"], "countries": [7]}])
