"""Nightly incremental runs: only scenes not processed yet are ingested."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import rasterio

from pipeline.cli.main import main
from pipeline.ops.incremental import fingerprint

from .opshelp import TROMBETAS_BBOX, ledger_rows, write_aoi


def _copy_scene(src: Path, dst: Path, *, tag: str) -> Path:
    """A second real scene file: same pixels, different bytes (a new acquisition's file)."""
    shutil.copyfile(src, dst)
    with rasterio.open(dst, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
        ds.update_tags(ACQUISITION=tag)
    return dst


def test_incremental_ingests_only_new_scenes(
    tmp_path: Path, sample_data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASM_INGEST__ALLOW_ABSOLUTE_PATHS", "true")  # scenes in tmp_path, by absolute path
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    real = sample_data / "imagery" / "trombetas_s2_l2a.tif"
    a = _copy_scene(real, scenes / "a.tif", tag="2024-07-01")
    entry = {"scale": 0.0001, "offset": -0.1}
    aois = tmp_path / "aoi"
    aois.mkdir()
    write_aoi(
        aois,
        "river",
        scenes=[{**entry, "path": str(a), "scene_id": "A", "datetime": "2024-07-01T13:50:00"}],
        bbox=TROMBETAS_BBOX,
    )
    out = tmp_path / "out"
    db = out / "asm-monitor.sqlite"
    argv = [
        "--sample-data",
        str(sample_data),
        "--aoi-dir",
        str(aois),
        "run",
        "--aoi",
        "river",
        "--out",
        str(out),
    ]
    argv += ["--scheduler", "threads", "--no-progress"]

    # night 1: never run -> everything available
    assert main(argv) == 0
    capsys.readouterr()
    first = ledger_rows(db, "SELECT * FROM run_aois")
    assert [(r["status"], r["period"]) for r in first] == [("ok", "all")]
    flags_mtime = (out / "river" / "flags.parquet").stat().st_mtime_ns

    # night 2: nothing new -> up to date, nothing read or rewritten
    assert main(argv) == 0
    assert "no new input since" in capsys.readouterr().out
    second = ledger_rows(db, "SELECT * FROM run_aois ORDER BY started DESC, rowid DESC LIMIT 1")[0]
    assert second["status"] == "up_to_date"
    assert ledger_rows(db, "SELECT * FROM run_inputs WHERE run_id = ?", second["run_id"]) == []
    assert (out / "river" / "flags.parquet").stat().st_mtime_ns == flags_mtime

    # a new acquisition arrives: night 3 ingests only B, over a period that covers it
    b = _copy_scene(real, scenes / "b.tif", tag="2026-01-05")
    assert fingerprint(b) != fingerprint(a)
    write_aoi(
        aois,
        "river",
        scenes=[
            {**entry, "path": str(a), "scene_id": "A", "datetime": "2024-07-01T13:50:00"},
            {**entry, "path": str(b), "scene_id": "B", "datetime": "2026-01-05T13:50:00"},
        ],
        bbox=TROMBETAS_BBOX,
    )
    assert main([*argv, "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "would run" in dry and f"input {b}" in dry and f"input {a}" not in dry
    assert main(argv) == 0
    capsys.readouterr()
    third = ledger_rows(db, "SELECT * FROM run_aois ORDER BY started DESC, rowid DESC LIMIT 1")[0]
    assert third["status"] == "ok"
    today = datetime.now(UTC).date().isoformat()
    assert third["period"] == f"2026-01-05/{max(today, '2026-01-05')}"
    processed = ledger_rows(
        db, "SELECT input_id, fingerprint FROM run_inputs WHERE run_id = ?", third["run_id"]
    )
    assert processed == [{"input_id": str(b), "fingerprint": fingerprint(b)}]

    # night 4: both scenes known -> up to date again
    assert main(argv) == 0
    capsys.readouterr()
    last = ledger_rows(db, "SELECT status FROM run_aois ORDER BY started DESC, rowid DESC LIMIT 1")[0]
    assert last["status"] == "up_to_date"


def test_explicit_period_reruns_are_skipped_unless_forced(
    tmp_path: Path, sample_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["--sample-data", str(sample_data), "run", "--aoi", "trombetas", "--period", "2024"]
    argv += ["--out", str(out), "--scheduler", "threads"]
    assert main(argv) == 0
    assert main(argv) == 0
    assert "already done by run" in capsys.readouterr().out
    assert main([*argv, "--force"]) == 0
    statuses = [
        r["status"]
        for r in ledger_rows(out / "asm-monitor.sqlite", "SELECT status FROM run_aois ORDER BY rowid")
    ]
    assert statuses == ["ok", "skipped", "ok"]
