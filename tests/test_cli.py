from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.main import build_parser, main


def _subcommands() -> list[list[str]]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    out = []
    for name, sub in action.choices.items():  # type: ignore[union-attr]
        out.append([name])
        for a in sub._actions:
            if getattr(a, "choices", None) and isinstance(a.choices, dict):
                out += [[name, child] for child in a.choices]
    return out


@pytest.mark.parametrize("argv", _subcommands(), ids=" ".join)
def test_every_subcommand_explains_itself(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "usage: asm-monitor" in text and len(text.splitlines()) > 3


def test_console_script_help_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli.main", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for cmd in ("run", "demo", "aoi", "sites"):
        assert cmd in out


def test_config_error_exits_2_with_the_fix(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.toml"
    cfg.write_text("[comply]\nnear_site = 5\n")
    assert main(["--config", str(cfg), "aoi", "list"]) == 2
    assert "Did you mean 'near_site_m'" in capsys.readouterr().err


def test_unknown_aoi_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--aoi", "atlantis", "--dry-run"]) == 2
    assert "Unknown AOI ['atlantis']" in capsys.readouterr().err


# -- issue 18 item 7: operator traps --------------------------------------------------------


def test_global_options_may_follow_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["run", "--aoi", "atlantis", "--dry-run", "--log-format", "json"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "Unknown AOI ['atlantis']" in json.loads(line)["message"]
    # before the subcommand still works, and a value given before is kept when not repeated
    assert main(["--log-format", "json", "run", "--aoi", "atlantis", "--dry-run", "-q"]) == 2
    assert json.loads(capsys.readouterr().err.splitlines()[0])["level"] == "ERROR"


def test_unknown_asm_variable_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ASM_OUTDIR", str(tmp_path))
    assert main(["aoi", "list"]) == 2
    assert "Unknown environment variable ASM_OUTDIR. Did you mean ASM_OUT_DIR?" in capsys.readouterr().err


def test_scheduler_help_names_every_scheduler_the_config_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.core.config import load_settings
    from pipeline.core.config_checks import LOCAL_SCHEDULERS

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in LOCAL_SCHEDULERS:
        assert f"'{name}'" in text
        assert load_settings(None, environ={}, cli={"run": {"scheduler": name}}).run.scheduler == name


SIGMINE = "registry/sigmine_amapa_2021.geojson"


def test_sites_validate_recognises_sigmine_columns(
    sample_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["sites", "validate", str(sample_data / SIGMINE)])
    out = capsys.readouterr().out
    assert "rows read: 1115" in out and "format sigmine (recognised from its columns" in out
    assert "missing site id" not in out


def test_sites_validate_with_the_wrong_format_names_the_right_one(
    sample_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sites", "validate", str(sample_data / SIGMINE), "--format", "native"]) == 2
    err = capsys.readouterr().err
    assert "has no column 'site_id' (format native)" in err and "--format sigmine" in err


def test_the_compact_summary_counts_flags_as_the_index_does(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Above 12 AOIs one line each; the flag count is the problems' (no ``compliant``), as the
    map legend and the index count them (issue 18 item 3)."""
    from pipeline.cli.run import print_summary
    from pipeline.core.records import AoiResult

    results = [
        AoiResult(
            aoi_id=f"a{i}",
            status="ok",
            flags_by_rule={"compliant": 5, "unregistered_mining": 2},
            flag_count=2,
            flagged_ha=1.5,
            alerts_queued=2,
        )
        for i in range(13)
    ]
    print_summary(results, tmp_path)
    out = capsys.readouterr().out
    assert "a12                ok               2          1.5       2" in out
    assert "13 AOIs: 13 ok; 26 flags, 19.5 ha flagged, 26 alerts queued" in out
    assert "flags by rule" not in out
