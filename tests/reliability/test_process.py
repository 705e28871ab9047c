"""Case 5 (process faults) not already covered in tests/ops, tests/comply, tests/detect:
the disk filling up while a run writes its outputs (a real 32 MiB tmpfs), and a model file
whose hash is wrong refused by a whole `asm-monitor run` before anything is written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from ops.opshelp import run_cli

from pipeline.cli.main import main
from pipeline.detect.classify import fit_pixel_classifier
from pipeline.detect.features import DEFAULT_FEATURES
from pipeline.ingest.training import class_order
from pipeline.state.models import save_model

REPO = Path(__file__).resolve().parents[2]


def _visible(folder: Path) -> list[Path]:
    """The files a user or a web server sees: ``OUT/<aoi>/...`` through its link to the
    current version (and ``alerts`` through its link to the outbox), not the hidden
    ``OUT/.<aoi>`` folders that hold the versions."""
    found = []
    for top, dirs, files in os.walk(folder, followlinks=True):
        if Path(top) == folder:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(top) / name for name in files]
    return sorted(found)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in _visible(folder)}


def _whole(folder: Path) -> None:
    """Every output parses: no file is cut short, no temp file is left (in the hidden
    version folders either)."""
    names = [p.name for p in _visible(folder)]
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")], names
    hidden = [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]
    assert not hidden, hidden
    for p in _visible(folder):
        if p.name == "impact.parquet":  # the basin-wide impact table has no geometry
            pd.read_parquet(p)
        elif p.suffix == ".parquet":
            gpd.read_parquet(p)
        elif p.suffix in (".geojson", ".json"):
            json.loads(p.read_text())
        elif p.suffix == ".csv":
            pd.read_csv(p)
        elif p.suffix == ".html":
            assert p.read_text().rstrip().endswith("</html>"), p


@dataclass
class DiskFull:
    disk: Path
    out: Path
    before: dict[str, bytes]
    failed: subprocess.CompletedProcess[str]
    argv: list[str]
    filler: Path


@pytest.fixture(scope="module")
def disk_full(
    tmp_path_factory: pytest.TempPathFactory, sample_data: Path, aoi_dir: Path
) -> Iterator[DiskFull]:
    """amapa-gold 2024 written to a 32 MiB tmpfs, the disk filled to 700 KiB free, then
    amapa-gold 2023 run into the same folder (the run ledger on another disk)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    root = tmp_path_factory.mktemp("diskfull")
    disk = root / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        aois = root / "aoi"
        aois.mkdir()
        shutil.copy(aoi_dir / "amapa-gold.geojson", aois)
        out = disk / "out"
        base = ["--sample-data", str(sample_data), "--aoi-dir", str(aois), "run", "--aoi", "amapa-gold",
                "--out", str(out), "--state-db", str(root / "state.sqlite"), "--scheduler", "threads"]  # fmt: skip
        first = run_cli([*base, "--period", "2024"])
        assert first.returncode == 0, first.stdout + first.stderr
        before = _files(out)
        filler = disk / "filler"
        free = shutil.disk_usage(disk).free
        with open(filler, "wb") as fh:
            fh.write(b"\0" * (free - 700 * 1024))
        argv = [*base, "--period", "2023"]
        failed = run_cli(list(argv))
        yield DiskFull(disk, out, before, failed, argv, filler)
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def test_disk_full_is_a_clear_error_and_leaves_only_whole_files(disk_full: DiskFull) -> None:
    res = disk_full.failed
    assert res.returncode == 1
    assert "No space left on the disk of" in res.stdout and "run the same command again" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr
    _whole(disk_full.out)
    # what was not rewritten is the previous run's, byte for byte
    now = _files(disk_full.out)
    assert now.keys() == disk_full.before.keys()
    assert now["amapa-gold/map.html"] == disk_full.before["amapa-gold/map.html"]


def test_disk_full_keeps_the_previous_outputs_as_a_consistent_set(disk_full: DiskFull) -> None:
    now = _files(disk_full.out)
    # summary.json is the run-level record: it must say that this run failed ...
    assert json.loads(now.pop("summary.json"))["status"] == "failed"
    before = dict(disk_full.before)
    before.pop("summary.json")
    # ... while every AOI output is still the previous run's, as one consistent set
    assert now == before
    assert not [p for p in disk_full.out.iterdir() if ".staging-" in p.name or ".old-" in p.name]
    # the failed run's version folder is gone: only the outbox and the version shown are left
    home = disk_full.out / ".amapa-gold"
    shown = os.readlink(disk_full.out / "amapa-gold").split("/")[-1]
    assert sorted(p.name for p in home.iterdir()) == sorted(["alerts", shown])


def test_after_freeing_space_the_same_command_completes(disk_full: DiskFull) -> None:
    disk_full.filler.unlink()
    res = run_cli(list(disk_full.argv))
    assert res.returncode == 0, res.stdout + res.stderr
    _whole(disk_full.out)
    run = json.loads((disk_full.out / "amapa-gold" / "run.json").read_text())
    flags = gpd.read_parquet(disk_full.out / "amapa-gold" / "flags.parquet")
    assert run["period"] == "2023" and run["status"] == "ok"
    assert run["counts"]["flags_by_rule"] == flags["rule_id"].value_counts().sort_index().to_dict()
    # nothing of the 2024 run that failed to be replaced is left: the evidence ends in 2023
    years = {int(str(v)[:4]) for v in flags["last_seen"].dropna()}
    assert years and max(years) == 2023
    assert (disk_full.out / "amapa-gold" / "map.html").read_bytes() != disk_full.before["amapa-gold/map.html"]


# ---- a model with the wrong hash ------------------------------------------------------


def _model_file(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    means = {
        "forest": {"blue": 0.02, "green": 0.04, "red": 0.025, "nir": 0.32, "swir1": 0.15},
        "bare_mining": {"blue": 0.08, "green": 0.11, "red": 0.14, "nir": 0.20, "swir1": 0.30},
        "water": {"blue": 0.05, "green": 0.07, "red": 0.09, "nir": 0.04, "swir1": 0.01},
    }
    rows = [
        pd.DataFrame({b: v + rng.normal(0, 0.004, 60) for b, v in mu.items()}).assign(label=k, polygon_id=i)
        for i, (k, mu) in enumerate(list(means.items()) * 2)
    ]
    model = fit_pixel_classifier(
        pd.concat(rows, ignore_index=True),
        features=DEFAULT_FEATURES,
        classes=class_order(),
        sensor="sentinel2",
    )
    path = folder / "model.skops"
    save_model(model, path, provenance={"dataset": "reliability"})
    return path


@pytest.mark.parametrize(
    ("fault", "message"),
    [("pinned", "config pins"), ("edited", "changed after training")],
)
def test_run_refuses_a_model_with_the_wrong_hash_and_writes_nothing(
    fault: str,
    message: str,
    tmp_path: Path,
    sample_data: Path,
    aoi_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = _model_file(tmp_path)
    pin = ""
    if fault == "pinned":
        pin = 'model_sha256 = "' + "0" * 64 + '"\n'
    else:
        blob = bytearray(model.read_bytes())
        blob[-10] ^= 0xFF
        model.write_bytes(bytes(blob))
    cfg = tmp_path / "asm.toml"
    cfg.write_text(f'[detect]\nmodel_path = "{model}"\n{pin}')
    out = tmp_path / "out"
    argv = ["--config", str(cfg), "--sample-data", str(sample_data), "--aoi-dir", str(aoi_dir), "run",
            "--aoi", "trombetas", "--period", "2020", "--out", str(out), "--scheduler", "synchronous"]  # fmt: skip
    assert main(argv) == 1
    text = capsys.readouterr().out
    assert message in text and "status: failed" in text
    written = (
        [p for p in (out / "trombetas").rglob("*") if p.is_file()] if (out / "trombetas").exists() else []
    )
    assert written == []
