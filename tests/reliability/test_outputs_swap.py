"""Issue 15, case 5: alerts were deleted after `kill -9` between the two renames that swapped
an AOI's outputs into place (the outbox was left in `.<aoi>.old-*` and the rerun deleted it:
117 -> 0 alerts for amapa-gold 2024).

Here a run is killed (``os._exit``, no clean-up, as ``kill -9``) before each file-system
step the output swap takes, in turn. At every crash point the previous outputs stay readable
at ``OUT/<aoi>`` (``open_run``, ``map --run``, the outbox) and no queued alert is lost; the
rerun then completes and every alert of both runs is in the outbox exactly once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import open_run
from pipeline.cli.main import main
from pipeline.report.delivery import read_outbox

from .relhelp import write_detections, write_reserve

REPO = Path(__file__).resolve().parents[2]
AOI_ID = "rel-reserve"

#: Runs the CLI with every file-system step of pipeline/ops/output*.py (the writing and the
#: swap of outputs) counted; the process ends with os._exit(137) just before step CRASH_AT
#: (0 = never), and writes the number of steps it saw to STEPS_FILE.
_CRASHER = r"""
import os, shutil, sys
crash_at, seen = int(os.environ["CRASH_AT"]), [0]
def arm(mod, name):
    real = getattr(mod, name)
    def step(*args, **kwargs):
        name = sys._getframe(1).f_code.co_filename
        if os.path.basename(name).startswith("output") and os.path.basename(os.path.dirname(name)) == "ops":
            seen[0] += 1
            if seen[0] == crash_at:
                os._exit(137)
        return real(*args, **kwargs)
    setattr(mod, name, step)
for name in ("replace", "rename", "symlink", "unlink", "rmdir", "mkdir", "makedirs"):
    arm(os, name)
for name in ("rmtree", "move", "copytree"):
    arm(shutil, name)
from pipeline.cli.main import main
code = main(sys.argv[1:])
with open(os.environ["STEPS_FILE"], "w") as fh:
    fh.write(str(seen[0]))
sys.exit(code)
"""


def _argv(root: Path, period: str) -> list[str]:
    return ["--sample-data", str(root / "data"), "--aoi-dir", str(root / "aoi"), "run", "--aoi", AOI_ID,
            "--period", period, "--out", str(root / "out"), "--scheduler", "synchronous",
            "--no-progress"]  # fmt: skip


def _crash(root: Path, period: str, at: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASM_") or k == "ASM_MODEL_CACHE"}
    env.update(CRASH_AT=str(at), STEPS_FILE=str(root / "steps"))
    return subprocess.run(
        [sys.executable, "-c", _CRASHER, *_argv(root, period)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


def _outbox(out: Path) -> set[str]:
    return {a["alert_id"] for a in read_outbox(out / AOI_ID / "alerts" / "outbox")}


@pytest.fixture(scope="module")
def night1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reserve whose 2024 run queued 2 alerts; the 2025 detections are on disk."""
    root = tmp_path_factory.mktemp("swap")
    write_reserve(root / "aoi")
    write_detections(root / "data", "2024", [(0, 0, 300), (-1500, 500, 200)])
    write_detections(root / "data", "2025", [(0, 0, 500), (1000, -1500, 250)])
    assert main(_argv(root, "2024")) == 0
    return root


def _copy(night1: Path, dest: Path) -> Path:
    shutil.copytree(night1, dest, symlinks=True)
    return dest


def test_a_kill_at_any_step_of_the_swap_loses_no_alert_and_no_reader_sees_a_gap(
    night1: Path, tmp_path: Path
) -> None:
    first = _outbox(night1 / "out")
    assert len(first) == 2
    clean = _copy(night1, tmp_path / "clean")
    done = _crash(clean, "2025", 0)
    assert done.returncode == 0, done.stdout + done.stderr
    steps = int((clean / "steps").read_text())
    both = _outbox(clean / "out")
    assert first < both and len(both) == 4  # 2025: 2 worsening/new alerts more
    assert steps >= 1
    for at in range(1, steps + 1):
        root = _copy(night1, tmp_path / f"kill{at}")
        killed = _crash(root, "2025", at)
        assert killed.returncode == 137, (at, killed.stdout + killed.stderr)
        out = root / "out"
        # the AOI's outputs are whole (previous or new run) and readable at OUT/<aoi> ...
        run = open_run(out / AOI_ID)
        assert run.summary["period"] in ("2024", "2025"), at
        assert main(["map", "--run", str(out / AOI_ID), "--output", str(root / "m.html")]) == 0
        # ... and no alert queued before the kill is gone
        assert first <= _outbox(out), at
        # the rerun completes: every alert of both runs, once each
        assert main(_argv(root, "2025")) == 0, at
        assert _outbox(out) == both, at
        assert json.loads((out / AOI_ID / "run.json").read_text())["period"] == "2025"


def test_an_outbox_stranded_by_the_old_two_rename_swap_is_recovered(night1: Path, tmp_path: Path) -> None:
    """An output folder left by the old swap killed between its renames: the previous run's
    folder (with the outbox) sits in ``.<aoi>.old-*`` beside the new one. The next run
    recovers those alerts instead of deleting them."""
    root = _copy(night1, tmp_path / "legacy")
    out = root / "out"
    first = _outbox(out)
    current = out / AOI_ID
    real = out / "legacy-real"
    shutil.copytree(current, real)  # a plain folder, as the old layout had
    stranded = out / f".{AOI_ID}.old-abc123"
    shutil.copytree(real, stranded)
    shutil.rmtree(real / "alerts")  # the new outputs had no outbox: it was in .old-*
    if current.is_symlink() or current.is_file():
        current.unlink()
    else:
        shutil.rmtree(current)
    real.rename(current)
    assert main(_argv(root, "2025")) == 0
    assert first <= _outbox(out)
    assert not stranded.exists()
    assert len(_outbox(out)) == 4
