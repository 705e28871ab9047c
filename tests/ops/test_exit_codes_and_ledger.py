"""Exit codes 0/1/2/3, one broken AOI among good ones, and the ledger's record of it."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.state.lock import lock_path_for, run_lock

from .opshelp import TROMBETAS_BBOX, cli_env, ledger_rows, run_cli, start_cli, wait_for, write_aoi


def test_missing_aoi_selection_is_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "--out", str(tmp_path)]) == 2
    assert "--aoi ID (repeatable) or --all" in capsys.readouterr().err
    assert not (tmp_path / "asm-monitor.sqlite").exists()  # nothing ran, nothing recorded


def test_bad_period_is_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "--aoi", "trombetas", "--period", "2025Q5", "--out", str(tmp_path)]) == 2
    assert "Period '2025Q5' is not understood" in capsys.readouterr().err


def test_unreachable_scheduler_is_config_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample_data: Path
) -> None:
    argv = ["--sample-data", str(sample_data), "run", "--aoi", "trombetas", "--out", str(tmp_path)]
    code = main([*argv, "--scheduler", "bogus://nowhere"])
    assert code == 2
    assert "Unknown scheduler 'bogus://nowhere'" in capsys.readouterr().err


def test_dead_scheduler_address_is_config_error_and_recorded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ASM_RUN__CONNECT_TIMEOUT_S", "2")
    argv = ["--sample-data", str(sample_data), "run", "--aoi", "trombetas", "--out", str(tmp_path)]
    assert main([*argv, "--scheduler", f"tcp://127.0.0.1:{port}"]) == 2
    assert f"Cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in capsys.readouterr().err
    [run] = ledger_rows(tmp_path / "asm-monitor.sqlite", "SELECT status, exit_code FROM runs")
    assert run == {"status": "failed", "exit_code": 2}


def test_broken_aoi_fails_alone_exit_1(
    ops_aois: Path,
    sample_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a real AOI file whose scene was deleted: the night's other AOIs must still be done
    monkeypatch.setenv("ASM_INGEST__ALLOW_ABSOLUTE_PATHS", "true")  # the scene path is absolute
    write_aoi(
        ops_aois,
        "broken",
        scenes=[{"path": str(tmp_path / "gone" / "scene.tif"), "scene_id": "gone"}],
        bbox=TROMBETAS_BBOX,
    )
    out = tmp_path / "out"
    argv = ["--sample-data", str(sample_data), "--aoi-dir", str(ops_aois), "run", "--all"]
    code = main([*argv, "--out", str(out), "--scheduler", "threads", "--no-progress"])
    assert code == 1
    printed = capsys.readouterr().out
    assert "FAILED: broken" in printed
    # the good AOIs ran to the end and wrote their exports
    for aoi in ("trombetas", "amapa-gold"):
        assert (out / aoi / "flags.geojson").is_file()
        assert json.loads((out / aoi / "run.json").read_text())["status"] == "ok"
    assert not (out / "broken").exists()
    db = out / "asm-monitor.sqlite"
    [run] = ledger_rows(db, "SELECT * FROM runs")
    assert run["status"] == "partial" and run["exit_code"] == 1
    assert run["code_version"].startswith("0.") and run["rulebook_version"]
    assert run["peak_rss_mib"] > 50
    aois = {r["aoi_id"]: r for r in ledger_rows(db, "SELECT * FROM run_aois")}
    assert {k: v["status"] for k, v in aois.items()} == {
        "amapa-gold": "ok",
        "broken": "failed",
        "trombetas": "ok",
    }
    assert "gone/scene.tif does not exist" in aois["broken"]["error"]
    assert aois["trombetas"]["aoi_run_id"].startswith("trombetas-all-")
    assert json.loads(aois["trombetas"]["timings_json"])["total"] > 0
    inputs = ledger_rows(db, "SELECT input_id FROM run_inputs WHERE aoi_id = 'trombetas'")
    assert [r["input_id"] for r in inputs] == ["imagery/trombetas_s2_l2a.tif"]

    # `runs show` tells the operator what broke
    assert main(["runs", "show", run["run_id"], "--out", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "[broken] failed" in shown and "scene.tif does not exist" in shown
    assert "input imagery/trombetas_s2_l2a.tif  sha256:" in shown
    assert main(["runs", "list", "--out", str(out), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["aoi_status"] == {"failed": 1, "ok": 2}


def test_runs_show_unknown_id_and_missing_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "list", "--out", str(tmp_path)]) == 2
    assert "No run ledger at" in capsys.readouterr().err


def test_lock_held_in_process_exits_3(
    tmp_path: Path, sample_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    with run_lock(lock_path_for(out / "asm-monitor.sqlite")):
        code = main(
            [
                "--sample-data",
                str(sample_data),
                "run",
                "--aoi",
                "trombetas",
                "--out",
                str(out),
                "--scheduler",
                "threads",
            ]
        )
    assert code == 3
    err = capsys.readouterr().err
    assert "Another asm-monitor run holds the lock" in err and f"pid {os.getpid()}" in err
    assert not (out / "trombetas").exists()


def test_second_run_exits_3_while_first_runs(tmp_path: Path, sample_data: Path) -> None:
    out = tmp_path / "out"
    args = [
        "--sample-data",
        str(sample_data),
        "run",
        "--aoi",
        "trombetas",
        "--out",
        str(out),
        "--scheduler",
        "threads",
    ]
    db = out / "asm-monitor.sqlite"
    first = start_cli(args, env=cli_env(ASM_PAUSE_AFTER_AOI_S="60"), log=tmp_path / "first.log")
    try:
        wait_for(
            lambda: bool(ledger_rows(db, "SELECT 1 FROM run_aois WHERE status = 'ok'")),
            timeout=45,
            what="the first run to finish its AOI",
        )
        second = run_cli([*args, "--force"])
        assert second.returncode == 3, second.stderr
        assert f"pid {first.pid}" in second.stderr
        # waiting for the lock gives up after --lock-wait seconds, still with 3
        third = run_cli([*args, "--force", "--lock-wait", "1"])
        assert third.returncode == 3
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
    # SIGTERM (what systemd sends) is recorded, not left "running"
    assert first.returncode == 130
    [run] = ledger_rows(db, "SELECT status FROM runs")
    assert run["status"] == "interrupted"
    # and the lock died with the process
    assert main(args) == 0
