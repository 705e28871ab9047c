"""``asm-monitor sites validate`` on the real SIGMINE file, a broken copy of it, and a native CSV."""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.affinity import translate
from shapely.geometry import Polygon

from pipeline.cli.main import main
from pipeline.comply.registry import to_mine_sites
from pipeline.ingest.vectors import format_spec, read_registry

SIGMINE = "registry/sigmine_amapa_2021.geojson"
_LINE = re.compile(r"^  row (\d+) \(([^)]*)\): (.*)$")
# the one real problem in the 2021 file: a DISPONIBILIDADE part of concession 858010/1999
REAL_CONFLICT = 1080


def _validate(path: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, dict[int, str]]:
    code = main(["sites", "validate", str(path), *extra])
    out = capsys.readouterr().out
    rejected = {int(m.group(1)): m.group(3) for line in out.splitlines() if (m := _LINE.match(line))}
    return code, out, rejected


def _outside_rows(raw: gpd.GeoDataFrame, aoi_file: Path) -> set[int]:
    """Rows of titles none of whose parts touch the AOI polygon (computed without comply)."""
    aoi = gpd.GeoDataFrame.from_features([json.loads(aoi_file.read_text())], crs=4326).union_all()
    touches = raw.assign(t=raw.intersects(aoi)).groupby("PROCESSO")["t"].transform("any")
    return {i + 1 for i in raw.index[~touches]}


def test_real_sigmine_file_reports_its_one_conflict_and_merges(
    sample_data: Path, aoi_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sample_data / SIGMINE
    code, out, rejected = _validate(path, "--format", "sigmine", capsys=capsys)
    raw = gpd.read_file(path)
    repeats = raw["PROCESSO"].value_counts()
    assert "rows read: 1115" in out
    assert rejected.keys() == {REAL_CONFLICT} and code == 1
    assert "conflicting duplicate: phase 'DISPONIBILIDADE' vs 'CONCESSÃO DE LAVRA'" in rejected[REAL_CONFLICT]
    # every row is accounted for: a site, a merged part or a rejection
    sites = int(re.search(r"sites: (\d+)", out).group(1))  # type: ignore[union-attr]
    assert sites == raw["PROCESSO"].nunique()
    # 38 repeated ids; 858010/1999 keeps one part only (its other part is the conflict above)
    repeated = repeats[repeats > 1]
    assert f"multi-part titles merged: {len(repeated) - 1} ({int(repeated.sum()) - 2} rows)" in out
    _, out, _ = _validate(path, "--format", "sigmine", "--merged", capsys=capsys)
    merged = [line.split("rows ")[1].split(", ") for line in out.splitlines() if line.startswith("  merged ")]
    # nothing dropped silently: sites + extra parts merged into them + rejected rows = rows read
    assert sites + sum(len(rows) - 1 for rows in merged) + 1 == 1115
    code, out, rejected = _validate(
        path, "--format", "sigmine", "--aoi", str(aoi_dir / "amapa-gold.geojson"), capsys=capsys
    )
    assert rejected.keys() == _outside_rows(raw, aoi_dir / "amapa-gold.geojson") | {REAL_CONFLICT}
    assert all(rejected[r] == "outside every AOI" for r in rejected if r != REAL_CONFLICT)


def test_broken_copy_reports_exactly_the_broken_rows(
    sample_data: Path, aoi_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = gpd.read_file(sample_data / SIGMINE)
    assert (
        raw["PROCESSO"].value_counts()[[raw.at[i, "PROCESSO"] for i in (10, 20, 30, 40, 60, 70)]].eq(1).all()
    )
    broken = raw.copy()
    x, y = broken.geometry.iloc[10].representative_point().coords[0]
    broken.loc[10, "geometry"] = Polygon(
        [(x, y), (x + 0.01, y + 0.01), (x + 0.01, y), (x, y + 0.01)]
    )  # bow tie
    broken.loc[20, "FASE"] = "LAVRA CLANDESTINA"
    broken.loc[30, "PROCESSO"] = None
    broken.loc[40, ["PROCESSO", "FASE", "ULT_EVENTO"]] = [
        raw.at[70, "PROCESSO"],
        "DISPONIBILIDADE",
        "100 - DISPONIB/EDITAL PUBLICADO EM 01/01/1990",
    ]
    broken.loc[60, "geometry"] = translate(broken.geometry.iloc[60], xoff=60.0)  # moved to Africa
    path = tmp_path / "sigmine_broken.geojson"
    broken.to_file(path, driver="GeoJSON")

    code, out, rejected = _validate(path, "--format", "sigmine", capsys=capsys)
    assert code == 1 and "rows read: 1115" in out
    assert rejected.keys() == {11, 21, 31, 41, REAL_CONFLICT}
    assert rejected[11].startswith("invalid geometry (Self-intersection")
    assert rejected[21].startswith("unknown licence phase 'LAVRA CLANDESTINA'")
    assert rejected[31] == "missing site id"
    assert rejected[41].startswith(
        "conflicting duplicate: phase 'DISPONIBILIDADE' vs 'REQUERIMENTO DE PESQUISA'"
    )
    assert "(row 71)" in rejected[41]

    aoi_file = aoi_dir / "amapa-gold.geojson"
    _, _, with_aoi = _validate(path, "--format", "sigmine", "--aoi", str(aoi_file), capsys=capsys)
    assert with_aoi.keys() == {11, 21, 31, 41, 61, REAL_CONFLICT} | _outside_rows(raw, aoi_file)
    assert with_aoi[61] == "outside every AOI"


def test_native_csv_points_become_circles_and_bad_rows_are_named(
    tmp_path: Path, aoi_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sites.csv"
    path.write_text(
        "site_id,name,operator,licence_status,licence_valid_from,licence_valid_to,mineral,lon,lat,radius_m\n"
        "S1,Alpha,Op A,active,2020-01-01,2030-12-31,gold,-51.5,2.5,300\n"
        "S2,Beta,Op B,granted,,,gold,-51.6,2.5,200\n"
        "S3,Gamma,Op C,active,2025-01-01,2020-01-01,gold,-51.7,2.5,200\n"
        "S1,Alpha bis,Op A,active,,,gold,-51.8,2.5,200\n"
        "S5,Eps,Op E,expired,2010-01-01,2015-01-01,gold,,2.5,200\n"
        "S6,Zeta,,suspended,,,gold,10.0,50.0,100\n",
        encoding="utf-8",
    )
    code, out, rejected = _validate(path, "--aoi", str(aoi_dir / "amapa-gold.geojson"), capsys=capsys)
    assert code == 1 and "rows read: 6" in out and "sites: 1" in out
    assert rejected == {
        2: "unknown licence status 'granted'; use one of active, suspended, expired, pending, none",
        3: "dates inverted (valid from 2025-01-01 after valid to 2020-01-01)",
        4: "duplicate site id (first at row 1)",
        5: "empty geometry (no polygon, or a point without lon/lat)",
        6: "outside every AOI",
    }
    sites, _ = to_mine_sites(read_registry(path, fmt="native"), spec=format_spec("registry", "native"))
    s1 = sites.set_index("site_id").loc[["S1"]]
    laea = "+proj=laea +lat_0=2.5 +lon_0=-51.5 +datum=WGS84 +units=m"
    assert gpd.GeoSeries(s1.geometry, crs=4326).to_crs(laea).area.iloc[0] / 1e4 == pytest.approx(
        3.14159 * 300**2 / 1e4, rel=0.005
    )
    assert bool(s1["allows_extraction"].iloc[0]) and s1["licence_valid_to"].iloc[0].year == 2030
