"""Issue 18, items 7 and 9 as an operator meets them: bad AOI files among good ones, bad
config values, --force, usage errors and the ledger, fingerprints, `flags list`.

The AOI here reads only Amazon Mining Watch polygons (seven of them, ~5 s a run), so every
test runs the real command end to end without imagery."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.ops.incremental import fingerprint

from .opshelp import ledger_rows

BOX = [[-51.75, 0.72], [-51.65, 0.72], [-51.65, 0.82], [-51.75, 0.82], [-51.75, 0.72]]
BOWTIE = [[-51.75, 0.72], [-51.65, 0.82], [-51.65, 0.72], [-51.75, 0.82], [-51.75, 0.72]]


def amw_aoi(folder: Path, aoi_id: str, *, name: str | None = None, ring: list[list[float]] = BOX) -> Path:
    """A small protected AOI over seven AMW mining polygons in Amapá."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "type": "Feature",
        "properties": {
            "aoi_id": aoi_id,
            "name": aoi_id,
            "designation": "test reserve",
            "country": "Brazil",
            "protected": True,
            "inputs": {
                "detections": {"path": "detections/amw_amapa/amw_mining_amapa_*.geojson", "format": "amw"}
            },
        },
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    path = folder / (name or f"{aoi_id}.geojson")
    path.write_text(json.dumps(doc))
    return path


def _argv(sample_data: Path, aois: Path, out: Path, *rest: str) -> list[str]:
    return [
        "--sample-data",
        str(sample_data),
        "--aoi-dir",
        str(aois),
        "run",
        *rest,
        "--out",
        str(out),
        "--scheduler",
        "threads",
        "--no-progress",
    ]


def test_bad_aoi_files_fail_alone_and_the_rest_of_all_runs(
    tmp_path: Path, sample_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aois = tmp_path / "aoi"
    amw_aoi(aois, "good")
    amw_aoi(aois, "bowtie", ring=BOWTIE)
    (aois / "list.geojson").write_text("[]")
    (aois / "text.geojson").write_text('"str"')
    amw_aoi(tmp_path / "elsewhere", "linked")
    (aois / "linked.geojson").symlink_to(tmp_path / "elsewhere" / "linked.geojson")
    out = tmp_path / "out"
    assert main(_argv(sample_data, aois, out, "--all")) == 1
    printed = capsys.readouterr()
    assert "FAILED: bowtie.geojson, linked.geojson, list.geojson, text.geojson" in printed.out
    assert (out / "good" / "flags.geojson").is_file()
    db = out / "asm-monitor.sqlite"
    [run] = ledger_rows(db, "SELECT status, exit_code FROM runs")
    assert run == {"status": "partial", "exit_code": 1}
    rows = {r["aoi_id"]: r for r in ledger_rows(db, "SELECT aoi_id, status, error FROM run_aois")}
    assert {k: v["status"] for k, v in rows.items()} == {
        "good": "ok",
        "bowtie.geojson": "failed",
        "linked.geojson": "failed",
        "list.geojson": "failed",
        "text.geojson": "failed",
    }
    # each failure names its file and the fix
    assert "bowtie.geojson" in rows["bowtie.geojson"]["error"] and "repair" in rows["bowtie.geojson"]["error"]
    assert "top level is a JSON array" in rows["list.geojson"]["error"]
    assert "top level is a JSON string" in rows["text.geojson"]["error"]
    assert "outside the AOI folder" in rows["linked.geojson"]["error"]
    assert not (out / "linked").exists()


def test_duplicate_aoi_ids_are_refused_before_anything_runs(
    tmp_path: Path, sample_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aois = tmp_path / "aoi"
    amw_aoi(aois, "same", name="first.geojson")
    amw_aoi(aois, "same", name="second.geojson")
    out = tmp_path / "out"
    assert main(_argv(sample_data, aois, out, "--all")) == 2
    err = capsys.readouterr().err
    assert "aoi_id 'same' is defined twice" in err and "first.geojson" in err and "second.geojson" in err
    assert not out.exists()


BAD_CONFIGS = {
    "nan threshold": ("[detect]\nmin_area_ha = nan\n", "detect.min_area_ha = nan: must be a finite number"),
    "negative area": ("[detect]\nmin_area_ha = -1\n", "detect.min_area_ha = -1.0: must be >= 0"),
    "negative workers": ("[run]\nworkers = -4\n", "run.workers = -4: must be >= 0"),
    "tiny memory": ('[run]\nmemory_limit = "1KiB"\n', "at least 256 MiB"),
    "unknown language": ('lang = "xx"\n', "lang = 'xx': must be one of en, es, pt, fr"),
    "unknown severity": ('[alerts]\nmin_severity = "critical"\n', "must be one of info, low, medium, high"),
    "zero cell": ("[comply]\nfootprint_cell_deg = 0\n", "comply.footprint_cell_deg = 0.0: must be > 0"),
    "bad subscription": (
        '[[alerts.subscriptions]]\nname = "ngo"\nemail = "a@b.org"\nlang = "xx"\n',
        "lang 'xx' is not one of en, es, pt, fr",
    ),
}


@pytest.mark.parametrize(("toml", "said"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_config_exits_2_before_anything_runs_or_is_saved(
    tmp_path: Path, sample_data: Path, toml: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    aois = tmp_path / "aoi"
    amw_aoi(aois, "good")
    cfg = tmp_path / "asm.toml"
    cfg.write_text(toml)
    out = tmp_path / "out"
    assert main(["--config", str(cfg), *_argv(sample_data, aois, out, "--all")]) == 2
    assert said in capsys.readouterr().err
    assert not out.exists()  # no state DB, no outputs


def test_bad_config_leaves_an_existing_state_db_unchanged(
    tmp_path: Path, sample_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aois = tmp_path / "aoi"
    amw_aoi(aois, "good")
    out = tmp_path / "out"
    assert main(_argv(sample_data, aois, out, "--all")) == 0
    db = out / "asm-monitor.sqlite"
    before = {p.name: p.read_bytes() for p in out.glob("asm-monitor.sqlite*")}
    cfg = tmp_path / "asm.toml"
    cfg.write_text('lang = "xx"\n[comply]\nfootprint_cell_deg = 0\n')
    capsys.readouterr()
    assert main(["--config", str(cfg), *_argv(sample_data, aois, out, "--all", "--force")]) == 2
    err = capsys.readouterr().err
    assert "lang = 'xx'" in err and "comply.footprint_cell_deg = 0.0" in err
    assert {p.name: p.read_bytes() for p in out.glob("asm-monitor.sqlite*")} == before
    assert len(ledger_rows(db, "SELECT * FROM runs")) == 1


def test_usage_errors_do_not_touch_the_ledger(
    tmp_path: Path, sample_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aois = tmp_path / "aoi"
    amw_aoi(aois, "good")
    out = tmp_path / "out"
    argv = _argv(sample_data, aois, out, "--all")
    assert main([*argv, "--scheduler", "bogus://nowhere"]) == 2
    assert "Unknown scheduler 'bogus://nowhere'" in capsys.readouterr().err
    assert not out.exists()
    assert main(argv) == 0
    assert main([*argv, "--workers", "-4"]) == 2
    assert main([*argv, "--memory-limit", "1KiB"]) == 2
    assert [r["status"] for r in ledger_rows(out / "asm-monitor.sqlite", "SELECT status FROM runs")] == ["ok"]


def test_force_alone_recomputes_and_full_is_documented(
    tmp_path: Path, sample_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aois = tmp_path / "aoi"
    amw_aoi(aois, "good")
    out = tmp_path / "out"
    argv = _argv(sample_data, aois, out, "--aoi", "good")
    assert main(argv) == 0  # first night: everything
    assert main(argv) == 0  # nothing new: up to date
    assert main([*argv, "--force"]) == 0  # --force alone: recompute
    assert main([*argv, "--full"]) == 0  # --full alone: ledger ignored, identical run skipped
    capsys.readouterr()
    statuses = [
        r["status"]
        for r in ledger_rows(out / "asm-monitor.sqlite", "SELECT status FROM run_aois ORDER BY rowid")
    ]
    assert statuses == ["ok", "up_to_date", "ok", "skipped"]
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--full" in text and "skipped unless --force" in text
    assert "--force recompute even when" in text


def test_input_fingerprints_are_the_sha256_of_the_file(
    tmp_path: Path, sample_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "scene.bin"
    big.write_bytes(os.urandom(3 * 2**20 + 17))  # head and tail alone would not cover it
    assert fingerprint(big) == hashlib.sha256(big.read_bytes()).hexdigest()

    aois = tmp_path / "aoi"
    amw_aoi(aois, "good")
    out = tmp_path / "out"
    assert main(_argv(sample_data, aois, out, "--all")) == 0
    capsys.readouterr()
    [run] = ledger_rows(out / "asm-monitor.sqlite", "SELECT run_id FROM runs")
    assert main(["runs", "show", run["run_id"], "--out", str(out)]) == 0
    shown = capsys.readouterr().out
    for path in sorted((sample_data / "detections" / "amw_amapa").glob("*.geojson")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"input detections/amw_amapa/{path.name}  sha256:{digest}\n" in shown


def test_flags_list_prints_dates_not_period_labels(
    tmp_path: Path, sample_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aois = tmp_path / "aoi"
    amw_aoi(aois, "good")
    out = tmp_path / "out"
    assert main(_argv(sample_data, aois, out, "--all")) == 0
    capsys.readouterr()
    assert main(["flags", "list", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "7 flags"
    assert all("last_seen=all" not in line for line in lines)
    seen = {line.split("last_seen=")[1].split()[0] for line in lines[:-1]}
    assert seen <= {"2018-12-31", "2019-12-31", "2020-12-31", "2021-12-31", "2022-12-31", "2023-12-31",
                    "2024-12-31", "2025-03-31", "2025-06-30", "2025-09-30"}  # fmt: skip
    assert seen
