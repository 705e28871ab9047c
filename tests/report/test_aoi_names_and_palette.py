"""Issue 18: the AOI is named in the reader's language (map, index, scorecards, e-mails,
webhooks), a hostile name stays text; turbid water never shares a colour with mining (bare
ground) on the map, and no legend colour means two different things."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point

from pipeline.core.records import Aoi
from pipeline.ingest.aoi import load_aoi
from pipeline.report.alerts import alert_payloads
from pipeline.report.index import render_index
from pipeline.report.mail import build_message
from pipeline.report.map import SEVERITY_COLOURS, SITE_COLOURS, TURBID_COLOUR, render_map, write_map
from pipeline.report.scorecard import write_scorecards
from pipeline.report.subscriptions import Subscription
from pipeline.report.webhook import body_for

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "<script>alert(1)</script>{{ 7*7 }}"


@pytest.fixture(scope="module")
def munduruku(sample_data: Path) -> Aoi:
    """The real demo AOI file, with its names in four languages."""
    return load_aoi(REPO / "aoi" / "munduruku.geojson", sample_data=sample_data)


def _unjson(page: str) -> str:
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), page)


def _pa_flag(flags: gpd.GeoDataFrame, aoi: Aoi) -> gpd.GeoDataFrame:
    """The fixture flags plus one ``mining_in_protected_area`` flag as comply writes it
    (English sentence, reason values naming the AOI by its own name)."""
    extra = flags.iloc[[0]].copy()
    extra["flag_id"] = "bbbb000000000001"
    extra["rule_id"], extra["site_id"], extra["site_name"] = "mining_in_protected_area", None, None
    args = {
        "area_ha": 12.5,
        "aoi_name": aoi.name,
        "designation": "indigenous territory",
        "first_seen": "2019-12-31",
        "last_seen": "2020-12-31",
    }
    extra["reason_args"] = json.dumps(args)
    extra["reason"] = f"12.5 ha of mining detected inside {aoi.name} (indigenous territory)"
    return gpd.GeoDataFrame(pd.concat([flags, extra], ignore_index=True), geometry="geometry", crs=4326)


def _legend(page: str) -> str:
    return page.split("<div id='asm-legend'", 1)[1].split("<div id='asm-tiles-note'", 1)[0]


def test_map_names_the_aoi_in_the_readers_language(munduruku, detections, flags, sites) -> None:  # type: ignore[no-untyped-def]
    flags = _pa_flag(flags, munduruku)
    pages = {
        lang: render_map(
            aoi=munduruku.to_frame(),
            detections=detections,
            flags=flags,
            sites=sites,
            title=munduruku.name,
            names=munduruku.names,
            lang=lang,
        )
        for lang in ("pt", "es", "fr", "en")
    }
    for lang, page in pages.items():
        want = munduruku.names[lang]
        text = html.unescape(_unjson(page))
        assert f"<title>{html.escape(want, quote=True)}</title>" in page or f"<title>{want}</title>" in text
        assert want in html.unescape(_legend(page)), lang  # the legend's heading
        others = {v for k, v in munduruku.names.items() if k != lang and v != want}
        assert not [o for o in others if o in text], lang  # no other language's name anywhere
    # the AOI outline's tooltip and the flag's reason sentence name it the reader's way
    es = html.unescape(_unjson(pages["es"]))
    # the outline's tooltip is the AOI layer's feature `_tip`
    tips = re.findall(r'"_tip": "([^"]*)"', _unjson(pages["es"]))
    assert "Territorio Indígena Munduruku" in [html.unescape(t) for t in tips]
    assert "dentro de Territorio Indígena Munduruku" in es
    assert "dentro de Terra Indígena Munduruku" in html.unescape(_unjson(pages["pt"]))
    assert "inside Munduruku Indigenous Territory" in html.unescape(_unjson(pages["en"]))


def test_a_hostile_translated_name_stays_text(aoi_frame, detections, flags, sites) -> None:  # type: ignore[no-untyped-def]
    page = render_map(
        aoi=aoi_frame,
        detections=detections,
        flags=flags,
        sites=sites,
        title="Own name",
        names={"pt": HOSTILE},
        lang="pt",
    )
    assert "<script>alert(1)</script>" not in page and "{{ 7*7 }}" not in page
    # shown as written (not run, not rendered as a template): the legend's heading and the title
    heading = re.search(r"<b>(.*?)</b>", _legend(page))
    assert heading is not None and html.unescape(heading.group(1)) == HOSTILE
    title = re.search(r"<title>(.*?)</title>", page)
    assert title is not None and html.unescape(title.group(1)) == HOSTILE
    assert "Own name" not in _legend(page)


def test_index_and_scorecards_name_the_aoi_in_the_page_language(
    tmp_path: Path, munduruku, detections, flags, sites
) -> None:  # type: ignore[no-untyped-def]
    entry = {"aoi_id": "munduruku", "name": munduruku.name, "names": munduruku.names, "flags": 1}
    page = render_index([entry], lang="es")
    assert "Territorio Indígena Munduruku" in html.unescape(page)
    assert "Terra Indígena Munduruku" not in html.unescape(page)
    written = write_scorecards(
        tmp_path / "scorecards",
        sites=sites,
        flags=flags,
        detections=detections,
        aoi_name=munduruku.name,
        aoi_names=munduruku.names,
        lang="fr",
    )
    index = html.unescape(written["index.html"].read_text(encoding="utf-8"))
    assert "Terre indigène Munduruku" in index and "Terra Indígena" not in index
    card = html.unescape(
        next(p for p in (tmp_path / "scorecards").glob("*.html") if p.name != "index.html").read_text()
    )
    assert "Terre indigène Munduruku" in card


def test_email_and_webhook_name_the_aoi_in_the_subscribers_language(munduruku, flags) -> None:  # type: ignore[no-untyped-def]
    flags = _pa_flag(flags, munduruku)
    alerts = [
        {**a, "aoi_names": munduruku.names, "created": "2026-01-01T00:00:00+00:00"}
        for a in alert_payloads(flags, map_link="munduruku/map.html", aoi_name=munduruku.name)
    ]
    pa = next(a for a in alerts if a["rule_id"] == "mining_in_protected_area")
    assert pa["aoi_name"] == "Terra Indígena Munduruku"  # the name of record is kept
    sub = Subscription(name="ngo", email=("a@ngo.example",), lang="es")
    msg = message_from_bytes(bytes(build_message([pa], sub=sub, sender="asm@x.example")))
    subject = str(make_header(decode_header(msg["Subject"])))
    assert "Territorio Indígena Munduruku" in subject
    text = msg.get_payload()[0].get_payload(decode=True).decode()
    assert "dentro de Territorio Indígena Munduruku" in text and "Terra Indígena" not in text
    data = json.loads(body_for(pa, lang="fr"))["data"]
    assert data["aoi_name"] == "Terra Indígena Munduruku"
    assert data["aoi_name_local"] == "Terre indigène Munduruku"
    assert "Terre indigène Munduruku" in data["reason"]


# ---- colours ---------------------------------------------------------------------------


def _lab(colour: str) -> np.ndarray:
    """CIELAB (D65) of a ``#rrggbb`` colour."""
    c = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = m @ c / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _swatches(page: str) -> list[tuple[str, str, str]]:
    """(legend group, colour, label) of every swatch of the map's legend."""
    out = []
    for group in re.findall(
        r"<div><b>(.*?)</b>((?:<div><i style='background:[^']*'></i>[^<]*</div>)+)</div>", _legend(page)
    ):
        for colour, label in re.findall(r"<i style='background:([^']*)'></i>([^<]*)</div>", group[1]):
            out.append((html.unescape(group[0]), colour.lower(), html.unescape(label)))
    return out


@pytest.fixture
def with_turbid(detections: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The fixture's mining (2019..2021) plus turbid water first seen in 2020, as mining is."""
    turbid = detections.iloc[[1]].copy()
    turbid["detection_id"], turbid["kind"] = "t1", "turbidity"
    turbid["geometry"] = [Point(-51.70, 0.99).buffer(0.004)]
    return gpd.GeoDataFrame(pd.concat([detections, turbid], ignore_index=True), geometry="geometry", crs=4326)


def test_turbid_water_has_its_own_colour_and_no_legend_colour_means_two_things(
    aoi_frame,
    with_turbid,
    flags,
    sites,  # type: ignore[no-untyped-def]
) -> None:
    page = render_map(aoi=aoi_frame, detections=with_turbid, flags=flags, sites=sites, title="T", lang="en")
    swatches = _swatches(page)
    turbid = [(g, c, label) for g, c, label in swatches if label == "River turbidity"]
    assert turbid == [("Water", TURBID_COLOUR.lower(), "River turbidity")]
    mining = {c for g, c, _ in swatches if g == "Detections, first seen"}
    assert len(mining) == 3  # 2019, 2020, 2021: the turbid 2020 is not listed as mining
    # the drawn features: turbid water in its colour, mining of the same year in another
    drawn = {c.lower() for c in re.findall(r'"_c": "(#[0-9a-fA-F]{6})"', page)}
    assert TURBID_COLOUR.lower() in drawn and drawn - {TURBID_COLOUR.lower()} == mining
    # one colour, one meaning: a colour is shared only by a site state and the severity it
    # names ("Flagged: high severity" and "high")
    meaning: dict[str, set[str]] = {}
    for _group, colour, label in swatches:
        meaning.setdefault(colour, set()).add(re.sub(r"^Flagged: (\w+) severity$", r"\1", label))
    assert {c: m for c, m in meaning.items() if len(m) > 1} == {}, meaning
    # and turbid water is far from every other colour a reader sees (CIELAB distance)
    others = {*SITE_COLOURS.values(), *SEVERITY_COLOURS.values(), *mining, "#2c3e50"}
    nearest = min(float(np.linalg.norm(_lab(TURBID_COLOUR) - _lab(c))) for c in others)
    assert nearest > 30, nearest


@pytest.mark.browser
def test_turbid_water_and_mining_are_painted_differently_in_chromium(
    tmp_path: Path,
    offline_page: Callable[[Path], Any],
    aoi_frame,
    with_turbid,
    flags,
    sites,  # type: ignore[no-untyped-def]
) -> None:
    path = write_map(
        tmp_path / "map.html",
        aoi=aoi_frame,
        detections=with_turbid,
        flags=flags,
        sites=sites,
        title="T",
        lang="pt",
    )
    page = offline_page(path)
    page.wait_for_selector(".leaflet-container")
    fills: list[Any] = page.evaluate(
        "[...document.querySelectorAll('path.leaflet-interactive')]"
        ".filter(e => e.getAttribute('fill-opacity') === '0.55').map(e => e.getAttribute('fill'))"
    )
    swatches: list[Any] = page.evaluate(
        "[...document.querySelectorAll('#asm-legend i')].map(e => [getComputedStyle(e).backgroundColor,"
        " e.parentElement.textContent])"
    )
    assert len(fills) == len(with_turbid) == 5
    assert fills.count(TURBID_COLOUR) == 1  # the one turbid river
    assert len(set(fills)) == 4  # 2019, 2020, 2021 mining and the turbid water: 4 colours
    turbid_rgb = "rgb({}, {}, {})".format(*(int(TURBID_COLOUR[i : i + 2], 16) for i in (1, 3, 5)))
    assert [label for rgb, label in swatches if rgb == turbid_rgb] == ["Turbidez do rio"]
