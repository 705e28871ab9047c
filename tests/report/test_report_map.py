"""The buyer map as HTML: offline assets, escaping, flag anchors, languages, index page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import pytest

from pipeline.report.assets import AssetError, assert_offline
from pipeline.report.index import render_index, write_index
from pipeline.report.map import render_map, site_states
from pipeline.report.scorecard import scorecard_links

XSS = "<img src=x onerror=alert(1)>"


def _unjson(page: str) -> str:
    """Undo the \\uXXXX escapes that JSON-encoded popup strings carry."""
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), page)


def _render(aoi_frame, detections, flags, sites, lang: str = "en") -> str:  # type: ignore[no-untyped-def]
    return render_map(
        aoi=aoi_frame,
        detections=detections,
        flags=flags,
        sites=sites,
        title="T <script>alert(9)</script>",
        attribution="© test",
        lang=lang,
        run_id="run-1",
        scorecards=scorecard_links(sites),
    )


def test_a_cdn_link_is_refused() -> None:
    with pytest.raises(AssetError, match="vendor the asset"):
        assert_offline(
            '<head><script src="https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js"></script>'
        )
    with pytest.raises(AssetError):
        assert_offline('<link rel="stylesheet" href="//cdn.example/x.css"/>')


def test_map_embeds_leaflet_and_links_nothing_remote(aoi_frame, detections, flags, sites) -> None:  # type: ignore[no-untyped-def]
    page = _render(aoi_frame, detections, flags, sites)
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?(https?:)?//", page)
    assert "cdn.jsdelivr" not in page and "code.jquery.com" not in page
    assert "Leaflet" in page and "jQuery" in page  # the libraries themselves are inline
    # the only URL template left is the basemap's
    assert re.findall(r"https://[a-z{}.]*tile[^\"']*", page)


def test_hostile_strings_never_reach_html_raw(aoi_frame, detections, flags, sites) -> None:  # type: ignore[no-untyped-def]
    page = _render(aoi_frame, detections, flags, sites)
    assert XSS not in page
    assert "<script>alert(" not in page
    assert "${alert(2)}" not in page
    assert "onerror=alert(1)" in page  # it is there, but only as escaped text
    assert "&lt;img src=x onerror=alert(1)&gt;" in _unjson(page)


def test_each_flag_has_a_marker_anchor_and_translated_labels(aoi_frame, detections, flags, sites) -> None:  # type: ignore[no-untyped-def]
    page = _render(aoi_frame, detections, flags, sites, lang="es")
    assert page.count('"className": "asm-flag asm-sev-') == len(flags)
    for fid in flags["flag_id"]:
        assert f'"flag-{fid}"' in page
    assert "<html lang='es'>" in page
    assert "Alertas de cumplimiento" in page and "Minería no registrada" in _unjson(page)
    assert "Compliance flags" not in page


def test_site_legend_only_when_the_aoi_has_a_registry(aoi_frame, detections, flags, sites) -> None:  # type: ignore[no-untyped-def]
    with_sites = _render(aoi_frame, detections, flags, sites, lang="pt")
    assert "<b>Processos</b>" in with_sites and "Nenhuma mineração observada" in with_sites
    without = render_map(aoi=aoi_frame, detections=detections, flags=flags, sites=None, title="T", lang="pt")
    assert "<b>Processos</b>" not in without and "Nenhuma mineração observada" not in without
    assert "<b>Alertas por gravidade</b>" in without


def test_site_states_follow_worst_flag_then_licence(flags, sites) -> None:  # type: ignore[no-untyped-def]
    # 100/2001: awvl high + clearing medium -> high; 200/2002: only compliant; 300/2003: expired
    assert site_states(sites, flags) == ["flagged_high", "compliant", "no_extraction_allowed"]


def test_index_lists_every_aoi_escaped(tmp_path: Path) -> None:
    write_index(
        tmp_path, current={"aoi_id": "a", "name": "A <i>", "designation": "park", "country": "PE", "flags": 2}
    )
    write_index(
        tmp_path,
        lang="pt",
        current={
            "aoi_id": "b",
            "name": "B",
            "designation": "TI",
            "country": "BR",
            "flags": 0,
            "scorecards": True,
        },
    )
    page = (tmp_path / "index.html").read_text()
    assert "href='a/map.html'" in page and "href='b/map.html'" in page and "b/scorecards/index.html" in page
    assert "A &lt;i&gt;" in page and "Abrir mapa" in page
    assert [e["aoi_id"] for e in json.loads((tmp_path / "index.json").read_text())] == ["a", "b"]
    assert render_index([], lang="fr").count("<tr>") == 1  # header only


def test_real_run_map_has_one_marker_per_flag(real_run: Path) -> None:
    page = (real_run / "map.html").read_text()
    n = len(json.loads((real_run / "flags.geojson").read_text())["features"])
    assert n > 100
    assert page.count('"className": "asm-flag asm-sev-') == n
    assert_offline(page)
    sites = gpd.read_parquet(real_run / "sites.parquet")
    assert (real_run / "scorecards" / "index.html").is_file()
    assert len(list((real_run / "scorecards").glob("*.html"))) == len(sites) + 1
