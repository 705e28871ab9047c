from __future__ import annotations

import subprocess
import sys

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
