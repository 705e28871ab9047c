"""Issue 15, case 6: pending alerts were never retried by the nightly run. Delivery happened
only after an AOI that actually ran, so with the webhook down one night and up the next the
alerts stayed pending night after night (the AOI was ``up_to_date``), and a row left
``sending`` by a killed pass was never tried again.

Real nightly runs (``asm-monitor run --all``, incremental) of a small reserve, a real Standard
Webhooks receiver on 127.0.0.1 that is down the first night and up the next ones. Figures
after each night: alerts delivered / pending / duplicated."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.core.config import AlertParams
from pipeline.report.delivery import stale_claim_s

from .hostile import Endpoint, status
from .relhelp import WEBHOOK_SECRET, Receiver, free_port, write_detections, write_reserve

REPO = Path(__file__).resolve().parents[2]

AOI_ID = "rel-reserve"


@pytest.fixture(autouse=True)
def _secret() -> Iterator[None]:
    old = os.environ.get("ASM_WEBHOOK_SECRET")
    os.environ["ASM_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("ASM_WEBHOOK_SECRET", None)
        else:
            os.environ["ASM_WEBHOOK_SECRET"] = old


def _site(root: Path, port: int, *, timeout_s: float = 2) -> list[str]:
    """The reserve (2 alerts on its first night) and the nightly command line."""
    write_reserve(root / "aoi", AOI_ID)
    write_detections(root / "data", "2024", [(0, 0, 300), (-1500, 500, 200)])
    cfg = root / "asm.toml"
    cfg.write_text(
        "[alerts]\nbackoff_s = 0.01\nbackoff_max_s = 0.02\nmax_attempts = 2\n"
        f"timeout_s = {timeout_s}\n"
        f'[[alerts.subscriptions]]\nname = "ngo"\nwebhook_url = "http://127.0.0.1:{port}/hook"\n'
        'min_severity = "info"\n'
    )
    return ["--config", str(cfg), "--sample-data", str(root / "data"), "--aoi-dir", str(root / "aoi"),
            "run", "--all", "--out", str(root / "out"), "--scheduler", "synchronous",
            "--no-progress"]  # fmt: skip


def _states(root: Path) -> dict[str, int]:
    with sqlite3.connect(root / "out" / "asm-monitor.sqlite") as con:
        rows = con.execute("SELECT state, COUNT(*) FROM alert_delivery GROUP BY state").fetchall()
    return {str(s): int(n) for s, n in rows}


def _figures(root: Path, receiver: Receiver | None) -> dict[str, int]:
    """Alerts delivered (distinct ids the receiver accepted), pending (ledger rows not
    delivered) and duplicated (accepted copies beyond the first)."""
    got = receiver.deliveries if receiver else []
    states = _states(root)
    return {
        "delivered": len(set(got)),
        "pending": sum(n for s, n in states.items() if s != "delivered"),
        "duplicated": len(got) - len(set(got)),
    }


def _age(root: Path, *, minutes: float, alert_ids: list[str] | None = None) -> None:
    """Set ``updated_at`` of ``sending`` rows ``minutes`` in the past: the clock of a later
    night, as a killed pass left them."""
    when = (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat(timespec="seconds")
    with sqlite3.connect(root / "out" / "asm-monitor.sqlite") as con:
        if alert_ids is None:
            con.execute("UPDATE alert_delivery SET updated_at=? WHERE state='sending'", (when,))
        else:
            con.executemany(
                "UPDATE alert_delivery SET updated_at=? WHERE alert_id=?", [(when, a) for a in alert_ids]
            )


def test_alerts_pending_after_a_down_night_go_out_on_the_next_night(tmp_path: Path) -> None:
    port = free_port()
    argv = _site(tmp_path, port)
    figures = []
    # night 1: the receiver is down (nothing listens on its port)
    assert main(argv) == 0
    figures.append(_figures(tmp_path, None))
    assert figures[0] == {"delivered": 0, "pending": 2, "duplicated": 0}
    receiver = Receiver(port=port)
    try:
        for _night in (2, 3):  # up again; nothing new in the data: the AOI is up to date
            assert main(argv) == 0
            figures.append(_figures(tmp_path, receiver))
    finally:
        receiver.close()
    # was: {delivered 0, pending 2} after nights 2 and 3 (delivery only after an AOI that ran)
    assert figures[1:] == [{"delivered": 2, "pending": 0, "duplicated": 0}] * 2, figures
    assert receiver.requests == 2


def test_a_row_left_sending_by_a_killed_pass_is_retried_once_stale(tmp_path: Path) -> None:
    port = free_port()
    argv = _site(tmp_path, port)
    assert main(argv) == 0  # night 1: receiver down, 2 pending
    with sqlite3.connect(tmp_path / "out" / "asm-monitor.sqlite") as con:
        ids = [r[0] for r in con.execute("SELECT alert_id FROM alert_delivery ORDER BY alert_id")]
        # a pass killed while sending both (its claims stay behind)
        con.execute("UPDATE alert_delivery SET state='sending'")
    assert len(ids) == 2
    # one claim is a night old (a pass killed yesterday), one was taken a minute ago (a pass
    # that may still be sending: taking it over would send the alert twice)
    _age(tmp_path, minutes=24 * 60, alert_ids=ids[:1])
    _age(tmp_path, minutes=1, alert_ids=ids[1:])
    receiver = Receiver(port=port)
    try:
        assert main(argv) == 0  # night 2
        night2 = _figures(tmp_path, receiver)
        assert _states(tmp_path) == {"delivered": 1, "sending": 1}
        _age(tmp_path, minutes=24 * 60)  # the next night
        assert main(argv) == 0  # night 3
        night3 = _figures(tmp_path, receiver)
    finally:
        receiver.close()
    # was: 0 delivered, both left `sending` for ever
    assert night2 == {"delivered": 1, "pending": 1, "duplicated": 0}
    assert night3 == {"delivered": 2, "pending": 0, "duplicated": 0}
    assert receiver.requests == 2


def test_a_claim_is_stale_only_after_twice_the_longest_batch() -> None:
    # defaults: 4 attempts of at most 30 s, 3 backoffs of at most 30 s = 210 s; floor 10 min
    assert stale_claim_s(AlertParams()) == 600
    assert stale_claim_s(AlertParams(max_attempts=10, backoff_max_s=60)) == 2 * (10 * 30 + 9 * 60)


def test_a_slow_receiver_does_not_hold_the_run_lock(tmp_path: Path) -> None:
    """Night 1 with a receiver that stalls 5 s on its first request: a second run started
    while it stalls gets the lock (was: exit 3, delivery ran under the lock) and sends
    nothing the first run has claimed; every alert arrives once."""

    def answer(h: BaseHTTPRequestHandler, n: int) -> None:
        if n == 0:
            time.sleep(5)
        status(204)(h, n)

    hook = Endpoint(answer)
    argv = _site(tmp_path, hook.port, timeout_s=15)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASM_") or k == "ASM_MODEL_CACHE"}
    env["ASM_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    first = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli.main", *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        t0 = time.monotonic()
        while not hook.seen and time.monotonic() - t0 < 120 and first.poll() is None:
            time.sleep(0.05)
        assert hook.seen, "the first run never reached the receiver"
        assert first.poll() is None  # still waiting on the receiver
        assert main(argv) == 0  # was 3: "Another asm-monitor run holds the lock"
        out, _ = first.communicate(timeout=120)
        assert first.returncode == 0, out
    finally:
        if first.poll() is None:
            first.kill()
        hook.close()
    ids = [r.headers["webhook-id"] for r in hook.seen]
    assert _states(tmp_path) == {"delivered": 2}
    assert len(ids) == 2 == len(set(ids))  # delivered 2, duplicated 0
