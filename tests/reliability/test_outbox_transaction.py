"""Issue 15, case 4: a new incident was never announced after ``kill -9`` (or disk full, or a
late error) between the flag-state commit and the outbox write: the rerun saw it ``ongoing``.

Alerts are now inserted into the state database in the same transaction as the flag states
that create them (``alert_outbox``), and the file outbox is written from that table. Here a
night is killed (``os._exit``, as ``kill -9``) or fails (``OSError``, as a full disk) right
after the flag states commit, before any output is written; the next night, run without a
period as cron does, queues exactly the alerts an uninterrupted night queues, each once, and
delivers each once to a real HTTP receiver.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.report.delivery import read_outbox

from .relhelp import WEBHOOK_SECRET, Receiver, free_port, write_detections, write_reserve

REPO = Path(__file__).resolve().parents[2]
AOI_ID = "rel-reserve"

#: Runs the CLI with the flag store's ``save_period`` wrapped: once it has committed, the
#: process ends with os._exit(137) (MODE=kill) or the save raises OSError(ENOSPC) (MODE=full).
_CRASHER = r"""
import errno, os, sys
from pipeline.state import flag_store
real = flag_store.StateStore.save_period
def save_period(self, *args, **kwargs):
    rows = real(self, *args, **kwargs)
    if os.environ["MODE"] == "kill":
        os._exit(137)
    raise OSError(errno.ENOSPC, "No space left on device")
flag_store.StateStore.save_period = save_period
from pipeline.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _argv(root: Path, *extra: str) -> list[str]:
    return ["--sample-data", str(root / "data"), "--aoi-dir", str(root / "aoi"), "run", "--aoi", AOI_ID,
            "--out", str(root / "out"), "--scheduler", "synchronous", "--no-progress", *extra]  # fmt: skip


def _crash(root: Path, mode: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASM_") or k == "ASM_MODEL_CACHE"}
    env["MODE"] = mode
    return subprocess.run(
        [sys.executable, "-c", _CRASHER, *_argv(root)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


def _outbox(out: Path) -> dict[str, dict[str, object]]:
    return {a["alert_id"]: a for a in read_outbox(out / AOI_ID / "alerts" / "outbox")}


@pytest.fixture(scope="module")
def night1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reserve that ran its 2024 detections; the 2025 file has arrived since."""
    root = tmp_path_factory.mktemp("txn")
    write_reserve(root / "aoi")
    write_detections(root / "data", "2024", [(0, 0, 300), (-1500, 500, 200)])
    assert main(_argv(root)) == 0
    write_detections(root / "data", "2025", [(0, 0, 500), (1000, -1500, 250)])
    return root


@pytest.fixture(scope="module")
def uninterrupted(night1: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    root = tmp_path_factory.mktemp("clean")
    shutil.copytree(night1, root, dirs_exist_ok=True, symlinks=True)
    assert main(_argv(root)) == 0
    _next_quarter(root)
    assert main(_argv(root)) == 0
    return _outbox(root / "out")


def _next_quarter(root: Path) -> None:
    """The next file arrives: the same clearings seen again in 2026 (nothing new or larger),
    so the night after the crash is a later lifecycle step than the crashed one."""
    write_detections(root / "data", "2026", [(0, 0, 500), (1000, -1500, 250)])


@pytest.mark.parametrize("mode", ["kill", "full"])
def test_an_incident_committed_before_a_crash_is_still_announced_once(
    night1: Path, uninterrupted: dict[str, dict[str, object]], tmp_path: Path, mode: str
) -> None:
    before = _outbox(night1 / "out")
    new_alerts = set(uninterrupted) - set(before)
    assert new_alerts, "the 2025 detections queue new / worsening alerts"
    root = tmp_path / mode
    shutil.copytree(night1, root, symlinks=True)
    crashed = _crash(root, mode)
    assert crashed.returncode == (137 if mode == "kill" else 1), crashed.stdout + crashed.stderr
    # the flag states committed: the crash happened after the lifecycle step was saved
    assert set(_outbox(root / "out")) == set(before)  # nothing was written yet

    # the next night (no --period, as cron runs it) has later evidence; it still announces
    # what the crashed night found (was: those flags were `ongoing` and never announced)
    _next_quarter(root)
    assert main(_argv(root)) == 0
    after = _outbox(root / "out")
    assert set(after) == set(uninterrupted)
    for alert_id in new_alerts:
        assert {k: v for k, v in after[alert_id].items() if k not in ("created", "run_id")} == {
            k: v for k, v in uninterrupted[alert_id].items() if k not in ("created", "run_id")
        }
    # and a third night finds nothing more to say
    assert main(_argv(root)) == 0
    assert set(_outbox(root / "out")) == set(uninterrupted)


def test_each_recovered_alert_reaches_the_receiver_once(
    night1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the kill, the next two nights deliver every queued alert to a real Standard
    Webhooks receiver: delivered = queued, duplicated 0."""
    root = tmp_path / "deliver"
    shutil.copytree(night1, root, symlinks=True)
    assert _crash(root, "kill").returncode == 137
    _next_quarter(root)
    port = free_port()
    config = root / "asm.toml"
    config.write_text(
        f'[[alerts.subscriptions]]\nname = "ngo"\nwebhook_url = "http://127.0.0.1:{port}/hook"\n'
        'min_severity = "info"\n'
    )
    monkeypatch.setenv("ASM_WEBHOOK_SECRET", WEBHOOK_SECRET)
    receiver = Receiver(port=port)
    try:
        for _night in (2, 3):
            assert main(["--config", str(config), *_argv(root)]) == 0
    finally:
        receiver.close()
    queued = set(_outbox(root / "out"))
    got = [doc["data"]["alert_id"] for doc in receiver.accepted.values()]
    assert sorted(got) == sorted(queued)
    assert len(receiver.deliveries) == len(set(receiver.deliveries)) == len(queued)


def test_the_night_delivery_writes_out_alerts_a_killed_run_only_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first night killed after its commit, and the AOI never run again (its source keeps
    failing, or it was retired): the night's delivery pass still finds its alerts in the state
    database, writes them into the outbox and delivers them."""
    from dataclasses import replace

    from pipeline.core.config import load_settings
    from pipeline.ops.night_delivery import deliver_pending

    root = tmp_path / "first"
    write_reserve(root / "aoi")
    write_detections(root / "data", "2024", [(0, 0, 300), (-1500, 500, 200)])
    assert _crash(root, "kill").returncode == 137
    out = root / "out"
    assert not (out / AOI_ID).exists()  # no outputs, no outbox file: only the database knows
    port = free_port()
    settings = load_settings()
    settings = replace(
        settings,
        out_dir=out,
        alerts=replace(
            settings.alerts,
            subscriptions=[
                {"name": "ngo", "webhook_url": f"http://127.0.0.1:{port}/hook", "min_severity": "info"}
            ],
            deliver_on_run=True,
        ),
    )
    monkeypatch.setenv("ASM_WEBHOOK_SECRET", WEBHOOK_SECRET)
    receiver = Receiver(port=port)
    try:
        report = deliver_pending(out, settings=settings)
    finally:
        receiver.close()
    assert report is not None
    assert (report.delivered, report.pending, report.failed) == (2, 0, 0)
    assert len(receiver.deliveries) == len(set(receiver.deliveries)) == 2
    assert len(read_outbox(out / f".{AOI_ID}" / "alerts" / "outbox")) == 2
