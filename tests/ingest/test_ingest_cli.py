"""``asm-monitor ingest``: prints what it found, writes nothing but its cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import rasterio
from rasterio.warp import transform_bounds

from pipeline.cli.main import main


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_local_source_prints_the_scene_and_writes_nothing(
    aoi_dir: Path, sample_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(
        ["--sample-data", str(sample_data), "ingest", "--aoi", str(aoi_dir / "trombetas.geojson"),
         "--period", "2020-01/2020-12", "--source", "local"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "trombetas_s2_l2a" in out and "EPSG:32721" in out and "offset -0.1" in out and "scenes: 1" in out
    assert _files(tmp_path) == set()


def test_scene_folder_with_period(
    sample_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    folder = sample_data / "imagery/eopatch_slovenia"
    with rasterio.open(folder / "s2_l1c_20150711.tif") as src:
        left, bottom, right, top = src.bounds
        w, s, e, n = transform_bounds(src.crs, "EPSG:4326", left + 60, bottom + 60, right - 60, top - 60)
    aoi = tmp_path / "slo.geojson"
    aoi.write_text(json.dumps({
        "type": "Feature",
        "properties": {"aoi_id": "slo", "name": "Slovenia", "designation": "test", "country": "SI"},
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
    }))  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code = main(
        ["--sample-data", str(sample_data), "ingest", "--aoi", str(aoi), "--period", "2015-07",
         "--scene-folder", str(folder), "--bands", "B04,B08,CLM", "--valid"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "scenes: 2" in out and "EPSG:32633" in out
    # over the AOI polygon IS_DATA is 1 everywhere and CLM is not applied by --valid
    assert "valid s2_l1c_20150711: 100.0 %" in out and "valid s2_l1c_20150731: 100.0 %" in out
    assert _files(work) == set()


def test_sentinelhub_source_against_the_emulator_writes_only_its_cache(
    sh_server: Any,
    aoi_dir: Path,
    sample_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    base, state = sh_server
    monkeypatch.setenv("ASM_SH_CLIENT_ID", "cli-client")
    monkeypatch.setenv("ASM_SH_CLIENT_SECRET", "cli-secret")
    monkeypatch.setenv("ASM_INGEST__SH_BASE_URL", base)
    monkeypatch.setenv("ASM_INGEST__SH_TOKEN_URL", f"{base}/oauth/token")
    monkeypatch.chdir(tmp_path)
    argv = ["--sample-data", str(sample_data), "ingest", "--aoi", str(aoi_dir / "trombetas.geojson"),
            "--period", "2020-01/2020-12", "--source", "sentinelhub", "--cache-dir", "cache"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "sentinel-2-l2a_20200305" in out and "sentinel-2-l2a_20200723" in out and "SCL" in out
    files = _files(tmp_path)
    assert files and all(f.startswith("cache/sentinelhub/") for f in files)
    assert main(argv) == 0 and state.hits["/api/v1/process"] == 2  # rerun: all from the cache
    state.plan["/oauth/token"] = [401]
    monkeypatch.setenv("ASM_SH_CLIENT_SECRET", "wrong")
    assert main([*argv[:-2], "--cache-dir", "other"]) == 2  # auth error -> exit code 2
