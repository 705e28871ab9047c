"""Issue 19: a night over a collection of real territories, on a LocalCluster of two workers with
the AOIs batched (AOI-level parallelism), then a night with nothing new.

Real data: the 6 territories of French Guiana in the basin collection (``"match": {"country":
"French Guiana"}``), one Brazilian territory and TI Uaçá, with Amazon Mining Watch's basin polygons. Checked: every AOI ran once, the index
and the basin-wide tables hold exactly what the per-AOI outputs hold, subscriptions by country
receive only their country's alerts (a real webhook receiver), and the second night recomputes
nothing and sends nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from reliability.relhelp import WEBHOOK_SECRET, Receiver, free_port

from pipeline.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def _guiana(folder: Path) -> None:
    doc = json.loads((REPO / "aoi" / "amazon-indigenous-territories.geojson").read_text())
    doc["properties"]["collection"]["match"] = {"country": "French Guiana"}
    folder.mkdir()
    (folder / "guiana.geojson").write_text(json.dumps(doc))
    # one Brazilian territory with mining (Alto Rio Guamá), as another collection
    doc["properties"]["collection"].update(id="brazil-one", match={"id": "BR1001_0"})
    (folder / "brazil-one.geojson").write_text(json.dumps(doc))
    shutil.copy(REPO / "aoi" / "ti-uaca.geojson", folder / "ti-uaca.geojson")


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> dict[str, object]:
    root = tmp_path_factory.mktemp("basin")
    _guiana(root / "aoi")
    port = free_port()
    cfg = root / "asm.toml"
    cfg.write_text(
        '[run]\nscheduler = "local"\nworkers = 2\naoi_batch = 2\ndashboard_address = ""\n'
        "[alerts]\nmax_age_days = 0\nbackoff_s = 0.01\n"
        f'[[alerts.subscriptions]]\nname = "gf"\nwebhook_url = "http://127.0.0.1:{port}/h"\n'
        'countries = ["french guiana"]\nmin_severity = "info"\n'
    )
    argv = ["--config", str(cfg), "--sample-data", str(sample_data), "--aoi-dir", str(root / "aoi"),
            "run", "--all", "--out", str(root / "out"), "--no-progress"]  # fmt: skip
    receiver = Receiver(port=port)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("ASM_WEBHOOK_SECRET", WEBHOOK_SECRET)
            assert main(argv) == 0
            first = list(receiver.deliveries)
            summary1 = json.loads((root / "out" / "summary.json").read_text())
            assert main(argv) == 0
            summary2 = json.loads((root / "out" / "summary.json").read_text())
            second = list(receiver.deliveries)[len(first) :]
            accepted = dict(receiver.accepted)
    finally:
        receiver.close()
    return {"out": root / "out", "s1": summary1, "s2": summary2, "first": first, "second": second,
            "accepted": accepted}  # fmt: skip


def test_every_territory_ran_once_on_the_workers(nights: dict[str, object]) -> None:
    s1 = nights["s1"]
    assert isinstance(s1, dict)
    ids = [a["aoi_id"] for a in s1["aois"]]
    assert len(ids) == len(set(ids)) == 8  # 6 territories of French Guiana, Alto Rio Guamá, TI Uaçá
    assert {a["status"] for a in s1["aois"]} == {"ok"}
    uaca = next(a for a in s1["aois"] if a["aoi_id"] == "ti-uaca")
    assert uaca["detections"] == 0  # the negative control: no AMW mining inside Uaçá


def test_index_and_basin_tables_hold_what_the_aois_hold(nights: dict[str, object]) -> None:
    out = nights["out"]
    assert isinstance(out, Path)
    entries = json.loads((out / "index.json").read_text())
    assert len(entries) == 8
    per_aoi_flags = sum(len(gpd.read_parquet(out / e["aoi_id"] / "flags.parquet")) for e in entries)
    basin = gpd.read_parquet(out / "flags.parquet")
    assert len(basin) == per_aoi_flags > 0 and basin["aoi_id"].nunique() <= 8
    impact = pd.read_parquet(out / "impact.parquet")
    assert len(impact) == sum(len(pd.read_csv(out / e["aoi_id"] / "impact.csv")) for e in entries)
    # the index's figures are the impact tables' (footprint new per period, zone = AOI)
    for e in entries:
        own = impact[
            (impact["aoi_id"] == e["aoi_id"])
            & (impact["zone_id"] == e["aoi_id"])
            & (impact["period"] != "total")
        ]
        assert e["mined_ha"] == pytest.approx(own["mined_ha"].sum(), abs=0.05)
    html = (out / "index.html").read_text()
    assert html.count("<tr>") == 8 + 1 and "overview.html" in html
    overview = (out / "overview.html").read_text()
    assert overview.count('"_fill"') == 8


def test_a_country_subscription_gets_its_country_once(nights: dict[str, object]) -> None:
    accepted = nights["accepted"]
    assert isinstance(accepted, dict)
    first, second = nights["first"], nights["second"]
    assert isinstance(first, list) and isinstance(second, list)
    countries = {doc["data"]["aoi_country"] for doc in accepted.values()}
    assert countries == {"French Guiana"}
    aois = nights["s1"]["aois"]  # type: ignore[index]
    brazil = next(a for a in aois if a["aoi_id"] == "it-br1001_0")
    assert brazil["alerts_queued"] > 0  # queued, but for no subscriber of this night
    queued = sum(a["alerts_queued"] for a in aois if a["aoi_id"] not in ("it-br1001_0", "ti-uaca"))
    assert len(first) == len(set(first)) == queued > 0
    assert second == []


def test_the_second_night_recomputes_nothing(nights: dict[str, object]) -> None:
    s2 = nights["s2"]
    assert isinstance(s2, dict)
    assert {a["status"] for a in s2["aois"]} == {"up_to_date"}
    out = nights["out"]
    assert isinstance(out, Path)
    assert len(json.loads((out / "index.json").read_text())) == 8


def test_an_aoi_with_no_detection_in_the_period_is_ok(tmp_path: Path, sample_data: Path) -> None:
    """TI Uaçá (no AMW polygon inside) run for one period: was an AttributeError (an empty
    selection of rows taken as a selection of columns)."""
    folder = tmp_path / "aoi"
    folder.mkdir()
    shutil.copy(REPO / "aoi" / "ti-uaca.geojson", folder / "ti-uaca.geojson")
    argv = ["--sample-data", str(sample_data), "--aoi-dir", str(folder), "run", "--all", "--period", "2024",
            "--out", str(tmp_path / "out"), "--scheduler", "synchronous", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [(a["status"], a["detections"]) for a in summary["aois"]] == [("ok", 0)]
