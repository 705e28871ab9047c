"""Alert delivery against real local servers: an HTTP receiver that verifies Standard
Webhooks signatures with the ``standardwebhooks`` package, and an aiosmtpd SMTP server."""

from __future__ import annotations

import base64
import json
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from pipeline.cli.main import main
from pipeline.core.config import Settings
from pipeline.core.errors import ConfigError
from pipeline.report.alerts import alert_payloads, write_outbox
from pipeline.report.delivery import deliver
from pipeline.report.subscriptions import parse_subscriptions

SECRET = "whsec_" + base64.b64encode(b"asm-monitor-test-secret-32bytes!").decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """An NGO endpoint: verifies each POST with standardwebhooks, dedupes on webhook-id,
    and answers 503 to the first ``fail_first`` requests."""

    def __init__(self, *, secret: str = SECRET, fail_first: int = 0, port: int = 0) -> None:
        self.verifier = Webhook(secret)
        self.fail_first = fail_first
        self.requests = 0
        self.accepted: dict[str, dict[str, Any]] = {}
        self.duplicates = 0
        self.rejected_signatures = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with outer.lock:
                    outer.requests += 1
                    if outer.requests <= outer.fail_first:
                        self.send_response(503)
                        self.end_headers()
                        return
                    try:
                        doc = outer.verifier.verify(body, dict(self.headers.items()))
                    except WebhookVerificationError:
                        outer.rejected_signatures += 1
                        self.send_response(401)
                        self.end_headers()
                        return
                    msg_id = self.headers["webhook-id"]
                    if msg_id in outer.accepted:
                        outer.duplicates += 1
                    outer.accepted[msg_id] = doc
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_WEBHOOK_SECRET", SECRET)


@pytest.fixture
def receiver(secret_env: None) -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _settings(tmp_path: Path, **alerts: Any) -> Settings:
    # max_age_days 0: every alert on its own (the backlog digest has its own tests)
    base = {"backoff_s": 0.01, "backoff_max_s": 0.05, "max_attempts": 3, "timeout_s": 5.0, "max_age_days": 0}
    return Settings().with_overrides(
        {"state_db": str(tmp_path / "state.sqlite"), "alerts": {**base, **alerts}}
    )


@pytest.fixture
def outbox(tmp_path: Path, flags: gpd.GeoDataFrame) -> Path:
    box = tmp_path / "run" / "test-aoi" / "alerts" / "outbox"
    write_outbox(alert_payloads(flags, map_link="test-aoi/map.html", aoi_name="Test AOI"), box)
    (box.parent.parent / "run.json").write_text(json.dumps({"aoi_id": "test-aoi", "run_id": "r1"}))
    return box


def _ids(box: Path) -> set[str]:
    return {p.stem for p in box.glob("*.json")}


# ---- configuration errors first -------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ([{"name": "a"}], "no channel"),
        ([{"name": "a", "email": ["x@y"], "min_severity": "urgent"}], "min_severity"),
        ([{"name": "a", "email": ["x@y"], "lang": "de"}], "lang"),
        ([{"name": "a", "email": ["x@y"], "aoi": ["x"]}], "unknown key"),
        ([{"name": "a", "email": ["x@y"]}, {"name": "a", "email": ["z@y"]}], "used twice"),
        ([{"name": "a", "webhook_url": "ftp://x"}], "https://"),
        ([{"name": "", "email": ["x@y"]}], "'name'"),
    ],
)
def test_bad_subscriptions_are_refused(raw: list[dict[str, Any]], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_subscriptions(raw)


def test_webhook_without_secret_names_the_variable(
    tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ASM_WEBHOOK_SECRET", raising=False)
    settings = _settings(tmp_path, subscriptions=[{"name": "ngo", "webhook_url": "http://127.0.0.1:9/x"}])
    with pytest.raises(ConfigError, match="ASM_WEBHOOK_SECRET"):
        deliver(outbox, settings=settings)


def test_subscriptions_load_from_toml(tmp_path: Path) -> None:
    from pipeline.core.config import load_settings

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[alerts]\nmin_severity = "high"\n[[alerts.subscriptions]]\nname = "ngo"\nemail = ["a@b.org"]\nlang = "es"\ndigest = true\n'
    )
    subs = parse_subscriptions(load_settings(cfg, environ={}).alerts.subscriptions)
    assert subs[0].email == ("a@b.org",) and subs[0].lang == "es" and subs[0].digest


# ---- webhook -----------------------------------------------------------------------


def test_signed_webhooks_verify_and_carry_the_evidence(
    tmp_path: Path, outbox: Path, receiver: Receiver
) -> None:
    settings = _settings(tmp_path, subscriptions=[{"name": "ngo", "webhook_url": receiver.url}])
    report = deliver(outbox, settings=settings)
    assert report.delivered == len(_ids(outbox)) == 2  # new high + worsening medium
    assert receiver.rejected_signatures == 0 and receiver.duplicates == 0
    docs = {d["data"]["alert_id"]: d for d in receiver.accepted.values()}
    assert set(docs) == _ids(outbox)
    d = next(d for d in docs.values() if d["data"]["status"] == "worsening")
    assert d["type"] == "flag.worsening"
    data = d["data"]
    assert data["rule_id"] == "clearing_outside_licence" and data["area_ha"] == 3.0
    assert data["map_link"] == "test-aoi/map.html#flag-aaaa000000000002"
    assert (data["lon"], data["lat"]) == (-51.73, 0.95)
    assert data["site_id"] == "100/2001" and data["first_seen"] == "2019-12-31"


def test_wrong_secret_is_rejected_by_the_receiver(
    tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = "whsec_" + base64.b64encode(b"another-secret-another-secret-32").decode()
    monkeypatch.setenv("ASM_WEBHOOK_SECRET", other)
    r = Receiver(secret=SECRET)
    try:
        report = deliver(
            outbox, settings=_settings(tmp_path, subscriptions=[{"name": "ngo", "webhook_url": r.url}])
        )
    finally:
        r.close()
    assert r.rejected_signatures == 2 and not r.accepted
    assert report.failed == 2 and report.delivered == 0  # 401 is not retried


def test_receiver_down_then_up_gets_every_alert_once(
    tmp_path: Path, real_run: Path, secret_env: None
) -> None:
    """503 for the first attempts, then connection refused for a whole pass, then up."""
    box = real_run / "alerts" / "outbox"
    expected = _ids(box)
    assert len(expected) > 100
    port = _free_port()
    subs = [{"name": "ngo", "webhook_url": f"http://127.0.0.1:{port}/hook", "min_severity": "info"}]
    # pass 1: nobody listening
    r1 = deliver(box, settings=_settings(tmp_path, subscriptions=subs, max_attempts=2))
    assert r1.delivered == 0 and r1.pending == len(expected)
    # pass 2: up, but the first 5 requests get 503: the first alert fails 3 times and the
    # pass stops (no backoff spent per alert); pass 3 gets 2 more 503s, then all through
    recv = Receiver(fail_first=5, port=port)
    try:
        r2 = deliver(box, settings=_settings(tmp_path, subscriptions=subs, max_attempts=3))
        assert (r2.delivered, r2.pending) == (0, len(expected))
        assert recv.requests == 3
        # pass 3 through the CLI, as cron would run it
        cfg = tmp_path / "asm.toml"
        cfg.write_text(
            f'state_db = "{tmp_path / "state.sqlite"}"\n[alerts]\nbackoff_s = 0.01\nmax_age_days = 0\n'
            f'[[alerts.subscriptions]]\nname = "ngo"\nwebhook_url = "{subs[0]["webhook_url"]}"\nmin_severity = "info"\n'
        )
        assert main(["--config", str(cfg), "alerts", "--run", str(real_run)]) == 0
        # a rerun of the same night: nothing new goes out
        before = recv.requests
        assert main(["--config", str(cfg), "alerts", "--run", str(real_run)]) == 0
        assert recv.requests == before
    finally:
        recv.close()
    assert {d["data"]["alert_id"] for d in recv.accepted.values()} == expected
    assert len(recv.accepted) == len(expected) and recv.duplicates == 0
    with sqlite3.connect(tmp_path / "state.sqlite") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        states = dict(con.execute("SELECT state, COUNT(*) FROM alert_delivery GROUP BY state").fetchall())
    assert states == {"delivered": len(expected)}


def test_rerun_of_the_same_night_queues_and_sends_nothing(
    tmp_path: Path, outbox: Path, receiver: Receiver, flags: gpd.GeoDataFrame
) -> None:
    settings = _settings(tmp_path, subscriptions=[{"name": "ngo", "webhook_url": receiver.url}])
    deliver(outbox, settings=settings)
    assert write_outbox(alert_payloads(flags, map_link="test-aoi/map.html"), outbox) == []
    again = deliver(outbox, settings=settings)
    assert again.delivered == 0 and again.already_delivered == 2
    assert receiver.requests == 2


def test_subscription_filters_by_aoi_rule_and_severity(
    tmp_path: Path, outbox: Path, receiver: Receiver
) -> None:
    subs = [
        {"name": "high-only", "webhook_url": receiver.url, "min_severity": "high"},
        {"name": "other-aoi", "webhook_url": receiver.url, "aois": ["elsewhere"]},
        {"name": "clearing", "webhook_url": receiver.url, "rules": ["clearing_outside_licence"]},
    ]
    deliver(outbox, settings=_settings(tmp_path, subscriptions=subs))
    got = sorted(d["data"]["rule_id"] for d in receiver.accepted.values())
    assert got == ["activity_without_valid_licence", "clearing_outside_licence"]


# ---- e-mail ------------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller

    box = Mailbox()
    port = _free_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    yield box, port
    ctl.stop()


def _parts(msg: Message) -> dict[str, str]:
    return {
        p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk() if not p.is_multipart()
    }  # type: ignore[union-attr]


def test_email_per_alert_in_spanish_with_map_link(
    tmp_path: Path, outbox: Path, smtp: tuple[Mailbox, int]
) -> None:
    box, port = smtp
    subs = [{"name": "ngo", "email": ["alertas@ngo.example"], "lang": "es"}]
    settings = _settings(
        tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, subscriptions=subs
    )
    report = deliver(outbox, settings=settings)
    assert report.delivered == 2 and len(box.messages) == 2
    msg = next(m for m in box.messages if "aaaa000000000002" in m["X-ASM-Alert-Ids"])
    assert msg["To"] == "alertas@ngo.example"
    assert "Desbroce fuera de la licencia" in msg["Subject"] and "Test AOI" in msg["Subject"]
    parts = _parts(msg)
    assert set(parts) == {"text/plain", "text/html"}
    assert "test-aoi/map.html#flag-aaaa000000000002" in parts["text/plain"]
    assert "href='test-aoi/map.html#flag-aaaa000000000002'" in parts["text/html"]
    assert "<img src=x" not in parts["text/html"] and "&lt;img src=x" in parts["text/html"]
    assert deliver(outbox, settings=settings).delivered == 0 and len(box.messages) == 2


def test_email_digest_is_one_message(tmp_path: Path, outbox: Path, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    subs = [{"name": "ngo", "email": ["a@ngo.example", "b@ngo.example"], "digest": True}]
    settings = _settings(
        tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, subscriptions=subs
    )
    assert deliver(outbox, settings=settings).delivered == 2
    assert len(box.messages) == 1
    assert {i.strip() for i in box.messages[0]["X-ASM-Alert-Ids"].split(",")} == _ids(outbox)
    assert box.messages[0]["Subject"] == "[asm-monitor] 2 alerts for Test AOI"


def test_starttls_refused_keeps_alerts_pending(
    tmp_path: Path, outbox: Path, smtp: tuple[Mailbox, int]
) -> None:
    box, port = smtp  # this server offers no STARTTLS
    subs = [{"name": "ngo", "email": ["a@ngo.example"]}]
    settings = _settings(
        tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=True, subscriptions=subs
    )
    report = deliver(outbox, settings=settings)
    assert report.pending == 2 and not box.messages
    assert all("SMTP" in e for e in report.errors)


def test_secret_never_in_logs_or_errors(
    tmp_path: Path, outbox: Path, caplog: pytest.LogCaptureFixture, secret_env: None
) -> None:
    port = _free_port()
    settings = _settings(
        tmp_path, subscriptions=[{"name": "ngo", "webhook_url": f"http://127.0.0.1:{port}/x"}], max_attempts=1
    )
    with caplog.at_level("DEBUG"):
        report = deliver(outbox, settings=settings)
    text = caplog.text + " ".join(report.errors)
    assert SECRET not in text and SECRET[6:] not in text
    assert os.environ["ASM_WEBHOOK_SECRET"] == SECRET


def test_real_alerts_arrive_in_the_subscriber_language(
    tmp_path: Path, real_run: Path, smtp: tuple[Mailbox, int], receiver: Receiver
) -> None:
    """The amapa-gold run's own outbox: one NGO reads Portuguese e-mail, another French
    webhooks; both get the reason sentence and clause in their language."""
    box, port = smtp
    rule = "clearing_outside_licence"
    subs = [
        {"name": "pt-ngo", "email": ["alertas@ngo.example"], "lang": "pt", "rules": [rule]},
        {"name": "fr-ngo", "webhook_url": receiver.url, "lang": "fr", "rules": [rule]},
    ]
    settings = _settings(
        tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, subscriptions=subs
    )
    outbox = real_run / "alerts" / "outbox"
    wanted = [
        a for a in map(json.loads, (p.read_text() for p in outbox.glob("*.json"))) if a["rule_id"] == rule
    ]
    assert wanted, "the demo registry should give clearing_outside_licence alerts"
    report = deliver(outbox, settings=settings)
    assert report.delivered == 2 * len(wanted) and len(box.messages) == len(wanted)
    for msg in box.messages:
        text = _parts(msg)["text/plain"]
        assert "ha de mineração a menos de 500 m do processo" in text
        assert "Guia de Devida Diligência da OCDE" in text and "ha of mining" not in text
    assert len(receiver.accepted) == len(wanted)
    for doc in receiver.accepted.values():
        data = doc["data"]
        assert (
            data["lang"] == "fr" and "ha d'exploitation minière à moins de 500 m du titre" in data["reason"]
        )
        # the same hectares, written the French way
        en_ha, fr_ha = data["reason_en"].split(" ha of mining")[0], data["reason"].split(" ha d'")[0]
        assert fr_ha == en_ha.replace(",", "\u202f").replace(".", ",")
