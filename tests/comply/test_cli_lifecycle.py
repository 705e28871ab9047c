"""``asm-monitor run`` period after period into one output folder: the lifecycle through the CLI."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest

from pipeline.cli.main import main


def _run(sample_data: Path, out: Path, period: str) -> gpd.GeoDataFrame:
    argv = ["--sample-data", str(sample_data), "-q", "run", "--aoi", "munduruku", "--period", period]
    assert main([*argv, "--out", str(out), "--scheduler", "synchronous"]) == 0
    return gpd.read_parquet(out / "munduruku" / "flags.parquet")


def test_successive_periods_then_a_rerun(
    sample_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _run(sample_data, tmp_path, "2023")
    assert set(first["status"]) == {"new"}
    second = _run(sample_data, tmp_path, "2024")
    statuses = set(second["status"])
    assert {"new", "worsening", "ongoing"} <= statuses
    # every flag of 2023 is still reported in 2024 (seen again, or open but not seen)
    assert set(first["flag_id"]) <= set(second["flag_id"])
    assert second.loc[~second["seen"], "status"].eq("ongoing").all()
    geojson = (tmp_path / "munduruku" / "flags.geojson").read_bytes()
    again = _run(sample_data, tmp_path, "2024")
    assert (tmp_path / "munduruku" / "flags.geojson").read_bytes() == geojson
    assert list(again["status"]) == list(second["status"])
    capsys.readouterr()
    assert main(["ledger", "verify", "--out", str(tmp_path)]) == 0
    assert "hash chain intact" in capsys.readouterr().out
