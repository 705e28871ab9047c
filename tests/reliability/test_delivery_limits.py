"""Issue 15, what a receiver can do to the nightly delivery pass: answer with a 200 MB body,
trickle its answer 1 byte at a time (webhook and SMTP), ask to be left alone with
``Retry-After``; what an alert can do to it: CR/LF in an AOI name, a broken payload; and a
resent e-mail that must be recognisable by its ``Message-ID``."""

from __future__ import annotations

import email.policy
import logging
import re
import time
import tracemalloc
from datetime import UTC, datetime
from email import message_from_bytes
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from pipeline.report.delivery import deliver

from .hostile import (
    Endpoint,
    Envelopes,
    TrickleTcp,
    edit_alert,
    huge_body,
    make_run,
    outbox_ids,
    rows,
    script,
    settings,
    start_smtp,
    states,
    status,
    trickle,
)
from .relhelp import WEBHOOK_SECRET, Receiver, free_port


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_WEBHOOK_SECRET", WEBHOOK_SECRET)


def _hook(url: str) -> list[dict[str, Any]]:
    return [{"name": "ngo", "webhook_url": url, "min_severity": "info"}]


def _mail(**extra: Any) -> list[dict[str, Any]]:
    return [{"name": "ngo", "email": ["alerts@ngo.example"], "min_severity": "info", **extra}]


def _smtp(port: int) -> dict[str, Any]:
    return {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False}


# ---- what a receiver can do --------------------------------------------------------


def test_a_200_mb_answer_is_read_only_up_to_the_cap(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    holder: list[Endpoint] = []
    endpoint = Endpoint(huge_body(holder))
    holder.append(endpoint)
    run = make_run(tmp_path, n=1)
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        with caplog.at_level(logging.DEBUG, logger="pipeline.report"):
            report = deliver(run / "alerts" / "outbox", settings=settings(tmp_path, _hook(endpoint.url)))
        seconds = time.monotonic() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        endpoint.close()
    read = [int(n) for n in re.findall(r"(\d+) bytes of the answer read", caplog.text)]
    print(f"\n200 MB answer: read {read} bytes, peak {peak / 2**20:.1f} MiB, {seconds:.2f} s, "
          f"server pushed {endpoint.sent_bytes / 2**20:.1f} MiB before the client left")  # fmt: skip
    assert report.delivered == 1 and len(endpoint.seen) == 1  # a 200 is a delivery
    assert read and max(read) <= 64 * 1024
    assert peak < 16 * 2**20  # not 200 MB in memory


def test_a_trickling_receiver_is_cut_by_the_delivery_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One byte every 0.2 s keeps every socket read under the 0.5 s timeout; only a total
    deadline per delivery (1.5 s here, 30 s by default) frees the run."""
    monkeypatch.setattr("pipeline.report.delivery.DELIVERY_DEADLINE_S", 1.5, raising=False)
    endpoint = Endpoint(trickle(0.2))
    run = make_run(tmp_path)
    t0 = time.monotonic()
    try:
        report = deliver(
            run / "alerts" / "outbox",
            settings=settings(tmp_path, _hook(endpoint.url), timeout_s=0.5, max_attempts=1),
        )
    finally:
        seconds = time.monotonic() - t0
        endpoint.close()
    print(f"\ntrickling webhook: pass took {seconds:.2f} s, {report}")
    assert seconds < 4.0
    assert (report.delivered, report.pending) == (0, 3) and states(tmp_path) == {"pending": 3}
    err = rows(tmp_path)[0]["last_error"]
    assert "deadline" in err and "1.5 s" in err


def test_a_trickling_smtp_server_is_cut_by_the_delivery_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pipeline.report.delivery.DELIVERY_DEADLINE_S", 1.5, raising=False)
    server = TrickleTcp(b"220 " + b"x" * 40 + b"\r\n", every_s=0.2)
    run = make_run(tmp_path)
    t0 = time.monotonic()
    try:
        report = deliver(
            run / "alerts" / "outbox",
            settings=settings(tmp_path, _mail(), timeout_s=0.5, max_attempts=1, **_smtp(server.port)),
        )
    finally:
        seconds = time.monotonic() - t0
        server.close()
    print(f"\ntrickling SMTP: pass took {seconds:.2f} s, {report}")
    assert seconds < 4.0 and server.connections == 1
    assert (report.delivered, report.pending) == (0, 3) and states(tmp_path) == {"pending": 3}
    assert "deadline" in rows(tmp_path)[0]["last_error"]


@pytest.mark.parametrize(("code", "form"), [(429, "seconds"), (503, "http-date")])
def test_retry_after_is_waited_before_the_next_attempt(code: int, form: str, tmp_path: Path) -> None:
    """backoff_s is 0.01 s; the receiver asks for 1 s, or for a date 2.5 s ahead (dates
    have whole seconds, so at least 1.5 s)."""
    retry_after = "1" if form == "seconds" else formatdate(time.time() + 2.5, usegmt=True)
    endpoint = Endpoint(script(status(code, retry_after=retry_after)))
    run = make_run(tmp_path, n=1)
    try:
        subs = _hook(endpoint.url)  # a wait up to backoff_max_s is spent in the pass
        report = deliver(run / "alerts" / "outbox", settings=settings(tmp_path, subs, backoff_max_s=5.0))
    finally:
        endpoint.close()
    gap = endpoint.seen[1].at - endpoint.seen[0].at
    print(f"\nRetry-After {retry_after!r}: next attempt after {gap:.2f} s (backoff 0.01 s)")
    assert report.delivered == 1 and len(endpoint.seen) == 2
    assert gap >= 0.95


def test_a_long_retry_after_is_the_next_attempt_time_capped_and_not_slept(tmp_path: Path) -> None:
    """Retry-After longer than the pass may wait (backoff_max_s): the pass moves on at once,
    the alerts stay pending with ``not_before`` = now + min(Retry-After, 1 h), and the next
    pass leaves the receiver alone until then (``--retry`` does not wait)."""
    endpoint = Endpoint(script(status(429, retry_after="864000")))
    run = make_run(tmp_path)
    box = run / "alerts" / "outbox"
    t0 = time.monotonic()
    try:
        first = deliver(box, settings=settings(tmp_path, _hook(endpoint.url)))
        seconds = time.monotonic() - t0
        not_before = [r["not_before"] for r in rows(tmp_path)]
        second = deliver(box, settings=settings(tmp_path, _hook(endpoint.url)))
        n_after_second = len(endpoint.seen)
        forced = deliver(box, settings=settings(tmp_path, _hook(endpoint.url)), retry=True)
    finally:
        endpoint.close()
    print(f"\nRetry-After 10 days: pass {seconds:.2f} s, not_before {not_before}")
    assert seconds < 1.0 and (first.delivered, first.pending) == (0, 3)
    wait = (datetime.fromisoformat(not_before[0]) - datetime.now(UTC)).total_seconds()
    assert 3500 < wait <= 3600
    assert (second.delivered, second.pending) == (0, 3) and n_after_second == 1
    assert any("Retry-After" in e for e in second.errors)
    assert forced.delivered == 3 and len(endpoint.seen) == 4 and states(tmp_path) == {"delivered": 3}


# ---- what an alert can do ----------------------------------------------------------


def test_cr_lf_in_an_aoi_name_neither_injects_headers_nor_stops_the_pass(tmp_path: Path) -> None:
    box, port = Envelopes(), free_port()
    ctl = start_smtp(box, port)
    run = make_run(tmp_path)
    ids = outbox_ids(run)
    edit_alert(run, ids[1], aoi_name="Reserva\r\nBcc: victim@evil.example\r\nX-Injected: yes\nZ")
    try:
        report = deliver(run / "alerts" / "outbox", settings=settings(tmp_path, _mail(), **_smtp(port)))
    finally:
        ctl.stop()
    assert (report.delivered, report.pending, report.failed) == (3, 0, 0)
    assert states(tmp_path) == {"delivered": 3}
    assert [rcpt for rcpt, _ in box.got] == [["alerts@ngo.example"]] * 3
    msgs = [message_from_bytes(raw, policy=email.policy.default) for _, raw in box.got]
    assert all(m["Bcc"] is None and m["X-Injected"] is None for m in msgs)
    subject = next(m["Subject"] for m in msgs if ids[1] in m["X-ASM-Alert-Ids"])
    assert "Reserva" in subject and "\r" not in subject and "\n" not in subject


def test_one_broken_alert_fails_alone_and_the_pass_goes_on(tmp_path: Path) -> None:
    recv = Receiver()
    run = make_run(tmp_path)
    ids = outbox_ids(run)
    edit_alert(run, ids[1], status=None)  # a payload the channel cannot render
    try:
        report = deliver(run / "alerts" / "outbox", settings=settings(tmp_path, _hook(recv.url)))
    finally:
        recv.close()
    assert (report.delivered, report.failed) == (2, 1) and len(recv.accepted) == 2
    by_id = {r["alert_id"]: r for r in rows(tmp_path)}
    assert by_id[ids[1]]["state"] == "failed" and "KeyError" in by_id[ids[1]]["last_error"]
    assert "--retry" in by_id[ids[1]]["last_error"]
    assert {by_id[i]["state"] for i in (ids[0], ids[2])} == {"delivered"}


# ---- a resent e-mail is recognisable ------------------------------------------------


def test_a_resent_email_carries_the_same_message_id(tmp_path: Path) -> None:
    """The server takes the message but its reply is lost (451), as with a kill during
    DATA: the message goes again, under the same Message-ID, so the recipient's client
    shows one. Exactly-once bookkeeping: one ledger row, delivered."""
    box, port = Envelopes(lose_replies=1), free_port()
    ctl = start_smtp(box, port)
    run = make_run(tmp_path, n=1)
    (alert_id,) = outbox_ids(run)
    try:
        report = deliver(run / "alerts" / "outbox", settings=settings(tmp_path, _mail(), **_smtp(port)))
    finally:
        ctl.stop()
    ids = [message_from_bytes(raw)["Message-ID"] for _, raw in box.got]
    assert report.delivered == 1 and len(ids) == 2
    assert ids == [f"<{alert_id}.ngo@asm-monitor>"] * 2
    assert [(r["state"], r["message_id"]) for r in rows(tmp_path)] == [("delivered", ids[0])]


def test_a_resent_digest_carries_the_same_message_id(tmp_path: Path) -> None:
    box, port = Envelopes(lose_replies=1), free_port()
    ctl = start_smtp(box, port)
    run = make_run(tmp_path)
    try:
        report = deliver(
            run / "alerts" / "outbox", settings=settings(tmp_path, _mail(digest=True), **_smtp(port))
        )
    finally:
        ctl.stop()
    msgs = [message_from_bytes(raw) for _, raw in box.got]
    assert report.delivered == 3 and len(msgs) == 2
    assert msgs[0]["Message-ID"] == msgs[1]["Message-ID"]
    assert re.fullmatch(r"<digest-[0-9a-f]{24}\.ngo@asm-monitor>", msgs[0]["Message-ID"])
    assert {r["message_id"] for r in rows(tmp_path)} == {msgs[0]["Message-ID"]}


def test_an_unreadable_outbox_file_is_named_and_the_others_go_out(tmp_path: Path) -> None:
    recv = Receiver()
    run = make_run(tmp_path)
    (run / "alerts" / "outbox" / "zzzz-broken.json").write_text('{"alert_id": "zzzz-broken", ')
    (run / "alerts" / "outbox" / "zzzz-empty.json").write_text('{"alert_id": "zzzz-empty"}')
    try:
        report = deliver(run / "alerts" / "outbox", settings=settings(tmp_path, _hook(recv.url)))
    finally:
        recv.close()
    assert report.delivered == 3 and len(recv.accepted) == 3
    named = " ".join(report.errors)
    assert "zzzz-broken.json" in named and "zzzz-empty.json" in named and "aoi_id" in named


def test_a_state_file_from_before_gets_the_new_column(tmp_path: Path) -> None:
    """A ledger written by the previous release (no ``not_before``): its rows are kept and
    the pass works on it."""
    import sqlite3

    run = make_run(tmp_path)
    first = outbox_ids(run)[0]
    con = sqlite3.connect(tmp_path / "state.sqlite")
    con.executescript(
        "CREATE TABLE alert_delivery (alert_id TEXT NOT NULL, subscriber TEXT NOT NULL, channel TEXT "
        "NOT NULL, aoi_id TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT "
        "NULL DEFAULT 0, last_error TEXT, message_id TEXT, queued_at TEXT NOT NULL, updated_at TEXT NOT "
        "NULL, delivered_at TEXT, PRIMARY KEY (alert_id, subscriber, channel));"
    )
    con.execute(
        "INSERT INTO alert_delivery VALUES (?, 'ngo', 'webhook', 'rel-aoi', 'delivered', 1, NULL, 'm', "
        "'2025-01-01', '2025-01-01', '2025-01-01')",
        (first,),
    )
    con.commit()
    con.close()
    recv = Receiver()
    try:
        report = deliver(run / "alerts" / "outbox", settings=settings(tmp_path, _hook(recv.url)))
    finally:
        recv.close()
    assert (report.delivered, report.already_delivered) == (2, 1) and len(recv.accepted) == 2
    assert all("not_before" in r for r in rows(tmp_path)) and states(tmp_path) == {"delivered": 3}
