"""Issue 18: a first run (or a backfill) must not flood an NGO with one message per old
incident. Alerts whose incident was last seen more than ``[alerts] max_age_days`` before the
newest evidence of their run go to each subscription as ONE digest per channel (one signed
webhook request listing them, one e-mail); the recent ones go one by one; each alert is still
recorded delivered once per subscriber and channel, and a rerun sends nothing.

Real first run of amapa-gold (SIGMINE Amapá + every AMW file, 2018..2025Q3) with a verifying
Standard Webhooks receiver and an SMTP server that requires a login, both on 127.0.0.1."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from datetime import date
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.main import main

from .relhelp import SMTP_PASSWORD, WEBHOOK_SECRET, Mailbox, Receiver, free_port, start_smtp

AOI_ID = "amapa-gold"


def _config(root: Path, *, hook: str, smtp_port: int, max_age_days: int | None = None) -> Path:
    cfg = root / "asm.toml"
    age = "" if max_age_days is None else f"max_age_days = {max_age_days}\n"
    cfg.write_text(
        "[alerts]\nbackoff_s = 0.01\nbackoff_max_s = 0.02\nmax_attempts = 2\ntimeout_s = 10\n"
        f'{age}smtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\nsmtp_starttls = false\nsmtp_user = "asm"\n'
        f'[[alerts.subscriptions]]\nname = "rede-amapa"\nwebhook_url = "{hook}"\nemail = ["alertas@ngo.example"]\n'
        'lang = "pt"\nmin_severity = "medium"\n'
    )
    return cfg


def _run(cfg: Path, data: Path, aoi_dir: Path, out: Path) -> None:
    argv = ["--config", str(cfg), "--sample-data", str(data), "--aoi-dir", str(aoi_dir), "run", "--aoi", AOI_ID,
            "--out", str(out), "--scheduler", "threads", "--no-progress"]  # fmt: skip
    assert main(argv) == 0


def _ledger(out: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(out / "asm-monitor.sqlite") as con:
        rows = con.execute("SELECT alert_id, channel, state, message_id FROM alert_delivery").fetchall()
    return [(str(a), str(c), str(s), str(m)) for a, c, s, m in rows]


def _outbox(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((out / AOI_ID / "alerts" / "outbox").glob("*.json"))]


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ASM_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("ASM_SMTP_PASSWORD", SMTP_PASSWORD)
    receiver, box, port = Receiver(), Mailbox(), free_port()
    ctl = start_smtp(box, port)
    try:
        yield receiver, box, port
    finally:
        receiver.close()
        ctl.stop()


def test_a_first_run_sends_its_backlog_as_one_digest_and_a_rerun_sends_nothing(
    tmp_path: Path, sample_data: Path, aoi_dir: Path, servers: Any
) -> None:
    receiver, box, port = servers
    cfg = _config(tmp_path, hook=receiver.url, smtp_port=port)
    out = tmp_path / "out"
    _run(cfg, sample_data, aoi_dir, out)
    alerts = _outbox(out)
    wanted = [a for a in alerts if a["severity"] in ("medium", "high")]
    newest = max(date.fromisoformat(a["last_seen"]) for a in wanted)
    recent = sorted(a["alert_id"] for a in wanted if (newest - date.fromisoformat(a["last_seen"])).days <= 90)
    backlog = sorted(a["alert_id"] for a in wanted if a["alert_id"] not in recent)
    # the real first run: a backlog of years of AMW detections, a few from the last quarter
    assert len(wanted) > 200 and len(backlog) > 150 and 0 < len(recent) < 100, (len(wanted), len(recent))
    assert str(newest) == "2025-09-30"

    # webhook: one signed request listing the whole backlog, then one request per recent alert
    docs = list(receiver.accepted.values())
    digests = [d for d in docs if d["type"] == "flag.digest"]
    singles = sorted(d["data"]["alert_id"] for d in docs if d["type"] != "flag.digest")
    assert len(digests) == 1 and receiver.requests == 1 + len(recent)
    assert sorted(digests[0]["data"]["alert_ids"]) == backlog and digests[0]["data"]["count"] == len(backlog)
    assert singles == recent
    assert digests[0]["data"]["lang"] == "pt"
    assert {a["aoi_name_local"] for a in digests[0]["data"]["alerts"]} == {
        "Títulos minerários e distritos auríferos do Amapá"
    }

    # e-mail: one message for the backlog (every id in X-ASM-Alert-Ids), one per recent alert
    msgs = [message_from_bytes(m) for m in box.messages]
    ids = [re.sub(r"\s+", "", str(make_header(decode_header(m["X-ASM-Alert-Ids"])))).split(",") for m in msgs]
    big = [i for i in ids if len(i) > 1]
    assert len(msgs) == 1 + len(recent) and len(big) == 1 and sorted(big[0]) == backlog
    assert sorted(i[0] for i in ids if len(i) == 1) == recent
    subject = next(
        str(make_header(decode_header(m["Subject"]))) for m, i in zip(msgs, ids, strict=True) if len(i) > 1
    )
    assert subject.startswith(f"[asm-monitor] {len(backlog)} ocorrências anteriores em Títulos minerários")

    # exactly once: every alert recorded delivered once per channel; the backlog's rows share
    # the digest's message id, the recent ones each have their own
    rows = _ledger(out)
    expected = Counter({(a["alert_id"], c): 1 for a in wanted for c in ("webhook", "email")})
    assert Counter((a, c) for a, c, _s, _m in rows) == expected
    assert {s for *_x, s, _m in rows} == {"delivered"}
    digest_ids = {m for a, c, _s, m in rows if a in backlog and c == "webhook"}
    assert len(digest_ids) == 1 and next(iter(digest_ids)).startswith("msg_digest_")

    # a rerun of the same night: nothing queued again, nothing sent again
    requests, messages = receiver.requests, len(box.messages)
    _run(cfg, sample_data, aoi_dir, out)
    assert receiver.requests == requests and len(box.messages) == messages
    assert sorted(_ledger(out)) == sorted(rows)


def test_a_negative_max_age_is_refused_naming_the_setting(tmp_path: Path) -> None:
    from pipeline.core.config import load_settings
    from pipeline.core.errors import ConfigError

    cfg = tmp_path / "asm.toml"
    cfg.write_text("[alerts]\nmax_age_days = -5\n")
    with pytest.raises(ConfigError, match=r"alerts.max_age_days = -5: must be >= 0"):
        load_settings(cfg)
