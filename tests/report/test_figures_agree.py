"""Issue 18 item 3: one definition of each headline figure (flag count, flagged area counted
once over overlapping titles, mined hectares), computed once in comply and read alike by
run.json / the console, flag_summary.csv, the index page and the map legend."""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from pipeline.analyst.api import run_aoi
from pipeline.comply.figures import run_figures
from pipeline.core.config import load_settings
from pipeline.ingest.aoi import load_aoi


@pytest.fixture(scope="module")
def amapa_run(tmp_path_factory: pytest.TempPathFactory, sample_data: Path, aoi_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("figures")
    settings = load_settings(None, cli={"sample_data": sample_data, "run": {"scheduler": "threads"}})
    aoi = load_aoi(aoi_dir / "amapa-gold.geojson", sample_data=sample_data, max_km2=1e6)
    assert run_aoi(aoi, out_dir=out, settings=settings).status == "ok"
    return out


def test_every_output_of_a_real_run_gives_the_same_totals(
    amapa_run: Path, aoi_dir: Path, sample_data: Path
) -> None:
    folder = amapa_run / "amapa-gold"
    flags = gpd.read_parquet(folder / "flags.parquet")
    det = gpd.read_parquet(folder / "detections.parquet")
    aoi = load_aoi(aoi_dir / "amapa-gold.geojson", sample_data=sample_data, max_km2=1e6)
    fig = run_figures(flags, det, crs=aoi.equal_area_crs)

    # independent: dissolve the problem flags in an equal-area CRS of the test's own
    problems = flags[flags["rule_id"] != "compliant"]
    laea = f"+proj=laea +lat_0={aoi.geometry.centroid.y} +lon_0={aoi.geometry.centroid.x} +datum=WGS84"
    union_ha = problems.to_crs(laea).union_all().area / 1e4
    assert fig.flag_count == len(problems) > 100
    assert fig.flagged_ha == pytest.approx(union_ha, rel=1e-4)
    mining_ha = det.loc[det["kind"] == "mining_deforestation"].to_crs(laea).union_all().area / 1e4
    assert fig.flagged_ha <= mining_ha  # never above all detections (no double count)
    assert 0 < fig.mined_ha <= det["mined_area_ha"].sum()

    counts = json.loads((folder / "run.json").read_text())["counts"]
    assert counts["flagged_ha"] == pytest.approx(fig.flagged_ha, abs=0.01)

    summary = pd.read_csv(folder / "flag_summary.csv")
    total = summary[summary["table"] == "totals"].iloc[0]
    assert int(total["count"]) == fig.flag_count
    assert total["area_ha"] == pytest.approx(fig.flagged_ha, abs=0.01)
    assert total["mined_area_ha"] == pytest.approx(fig.mined_ha, abs=0.01)
    by_rule = summary[(summary["table"] == "flags") & (summary["group_by"] == "rule_id")]
    assert by_rule["count"].sum() == fig.flag_count
    assert by_rule["area_ha"].sum() >= fig.flagged_ha - 0.01  # rules partition but titles overlap

    index = json.loads((amapa_run / "index.json").read_text())[0]
    assert index["flags"] == fig.flag_count
    assert index["flagged_ha"] == pytest.approx(fig.flagged_ha, abs=0.01)
    page = (amapa_run / "index.html").read_text()
    assert f">{fig.flag_count}<" in page and f"{fig.flagged_ha:,.1f}" in page

    legend = re.search(r"(\d+) flags", (folder / "map.html").read_text())
    assert legend is not None and int(legend.group(1)) == fig.flag_count
