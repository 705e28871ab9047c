"""Deliver outbox alerts to subscriptions, exactly once per alert, subscriber and channel.

State lives in table ``alert_delivery`` of the SQLite state file (WAL mode). A row is
``pending`` until its channel accepts it (``delivered``), or refuses it for good
(``failed``: a 4xx other than 408/429, or no SMTP host; ``--retry`` reopens those). A row is
claimed (``sending``) before the attempt, so two delivery passes never send the same row;
a claim older than :data:`STALE_CLAIM_S` (a crashed pass) is pending again. When one alert
still fails after every attempt, the pass stops trying that subscriber's channel (the rest
stay pending), so a dead endpoint costs one backoff sequence, not one per alert. Webhook
retries reuse the same ``webhook-id``, so a receiver that did get a message whose reply was
lost recognises the retry.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from pipeline.core.config import AlertParams, Settings, secret_from_env
from pipeline.core.errors import ConfigError, DataNotFoundError
from pipeline.report.mail import EmailChannel
from pipeline.report.subscriptions import Subscription, parse_subscriptions
from pipeline.report.webhook import DeliveryError, WebhookChannel, webhook_id

log = logging.getLogger(__name__)

STALE_CLAIM_S = 900
SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_delivery (
    alert_id    TEXT NOT NULL,
    subscriber  TEXT NOT NULL,
    channel     TEXT NOT NULL,
    aoi_id      TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    message_id  TEXT,
    queued_at   TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    delivered_at TEXT,
    PRIMARY KEY (alert_id, subscriber, channel)
);
CREATE INDEX IF NOT EXISTS alert_delivery_state ON alert_delivery (state, aoi_id);
"""


class Channel(Protocol):
    """A way to reach a subscriber. ``send`` raises DeliveryError when an attempt fails."""

    name: str

    def send(self, alerts: Sequence[Mapping[str, Any]], *, sub: Subscription) -> None: ...


@dataclass
class DeliveryReport:
    """What one delivery pass did (counts of ledger rows)."""

    delivered: int = 0
    pending: int = 0
    failed: int = 0
    already_delivered: int = 0
    errors: list[str] = field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def ledger(path: Path) -> Iterator[sqlite3.Connection]:
    """Open the state file with the ``alert_delivery`` table (WAL, autocommit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA busy_timeout=30000")
        con.executescript(SCHEMA)
        yield con
    finally:
        con.close()


def read_outbox(outbox: Path) -> list[dict[str, Any]]:
    """Every alert JSON in ``outbox``, sorted by alert id."""
    if not outbox.is_dir():
        raise DataNotFoundError(
            f"No alert outbox at {outbox}. Pass a run folder OUT_DIR/AOI_ID that `run` wrote."
        )
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(outbox.glob("*.json"))]


def _claim(con: sqlite3.Connection, key: tuple[str, str, str], *, retry: bool) -> bool:
    stale = (datetime.now(UTC) - timedelta(seconds=STALE_CLAIM_S)).isoformat(timespec="seconds")
    states = "('pending','failed')" if retry else "('pending')"
    cur = con.execute(
        f"UPDATE alert_delivery SET state='sending', updated_at=? WHERE alert_id=? AND subscriber=? "
        f"AND channel=? AND (state IN {states} OR (state='sending' AND updated_at < ?))",
        (_now(), *key, stale),
    )
    return cur.rowcount == 1


def _finish(
    con: sqlite3.Connection, keys: list[tuple[str, str, str]], state: str, attempts: int, error: str | None
) -> None:
    now = _now()
    con.execute("BEGIN IMMEDIATE")
    for key in keys:
        con.execute(
            "UPDATE alert_delivery SET state=?, attempts=attempts+?, last_error=?, updated_at=?, "
            "delivered_at=CASE WHEN ?='delivered' THEN ? ELSE delivered_at END "
            "WHERE alert_id=? AND subscriber=? AND channel=?",
            (state, attempts, error, now, state, now, *key),
        )
    con.execute("COMMIT")


def _attempt(
    channel: Channel,
    batch: list[dict[str, Any]],
    sub: Subscription,
    *,
    max_attempts: int,
    backoff_s: float,
    backoff_max_s: float,
    sleep: Callable[[float], None],
) -> tuple[str, int, str | None]:
    """Try up to ``max_attempts`` times with exponential backoff: (state, attempts, error)."""
    error = None
    for k in range(max_attempts):
        try:
            channel.send(batch, sub=sub)
            return "delivered", k + 1, None
        except DeliveryError as exc:
            error = str(exc)
            log.warning("%s to %s, attempt %d/%d: %s", channel.name, sub.name, k + 1, max_attempts, error)
            if not exc.retryable:
                return "failed", k + 1, error
            if k + 1 < max_attempts:
                sleep(min(backoff_s * 2**k, backoff_max_s))
    return "pending", max_attempts, error


def deliver(
    outbox: Path,
    *,
    settings: Settings,
    retry: bool = False,
    channels: Mapping[str, Channel] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Deliver every alert in ``outbox`` to each matching subscription and channel once.

    Parameters
    ----------
    outbox
        ``OUT_DIR/<aoi_id>/alerts/outbox``.
    retry
        Also retry deliveries that failed for good (e.g. after fixing a refused endpoint).
    channels
        Channel objects by name (default: webhook and e-mail from ``settings.alerts``).
    """
    params = settings.alerts
    subs = parse_subscriptions(params.subscriptions, default_min_severity=params.min_severity)
    report = DeliveryReport()
    if not subs:
        return report
    _require_secrets(subs)
    chans: Mapping[str, Channel] = channels or {
        "webhook": WebhookChannel(timeout_s=params.timeout_s),
        "email": EmailChannel(params),
    }
    alerts = {a["alert_id"]: a for a in read_outbox(outbox)}
    with ledger(settings.state_path) as con:
        _queue(con, alerts, subs)
        for sub in subs:
            for ch in sub.channels:
                _deliver_channel(
                    con, chans, ch, alerts, sub, params=params, retry=retry, sleep=sleep, report=report
                )
    log.info(
        "alerts %s: %d delivered, %d pending, %d failed, %d delivered before",
        outbox,
        report.delivered,
        report.pending,
        report.failed,
        report.already_delivered,
    )
    return report


def _require_secrets(subs: Sequence[Subscription]) -> None:
    """Refuse to start when a webhook subscription's signing secret is not in the environment."""
    for sub in subs:
        if sub.webhook_url and not secret_from_env(sub.secret_env):
            raise ConfigError(
                f"Subscription '{sub.name}' has a webhook but {sub.secret_env} is not set. "
                f"Export {sub.secret_env}=whsec_<base64 secret shared with the receiver>."
            )


def _queue(
    con: sqlite3.Connection, alerts: Mapping[str, dict[str, Any]], subs: Sequence[Subscription]
) -> None:
    """One ``pending`` ledger row per alert, wanting subscriber and channel (kept if there)."""
    con.execute("BEGIN IMMEDIATE")
    for alert in alerts.values():
        for sub in subs:
            if not sub.wants(alert):
                continue
            for ch in sub.channels:
                con.execute(
                    "INSERT OR IGNORE INTO alert_delivery (alert_id, subscriber, channel, aoi_id, "
                    "message_id, queued_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                    (
                        alert["alert_id"],
                        sub.name,
                        ch,
                        alert["aoi_id"],
                        webhook_id(alert["alert_id"], sub.name) if ch == "webhook" else None,
                        _now(),
                        _now(),
                    ),
                )
    con.execute("COMMIT")


def _batches(todo: list[str], alerts: Mapping[str, dict[str, Any]], *, digest: bool) -> list[list[str]]:
    """One alert per message, or with ``digest`` one message per AOI."""
    if not digest:
        return [[a] for a in todo]
    by_aoi: dict[str, list[str]] = {}
    for a in todo:
        by_aoi.setdefault(alerts[a]["aoi_id"], []).append(a)
    return list(by_aoi.values())


def _deliver_channel(
    con: sqlite3.Connection,
    chans: Mapping[str, Channel],
    ch: str,
    alerts: Mapping[str, dict[str, Any]],
    sub: Subscription,
    *,
    params: AlertParams,
    retry: bool,
    sleep: Callable[[float], None],
    report: DeliveryReport,
) -> None:
    """Send ``sub``'s undelivered alerts of ``alerts`` on channel ``ch``, counting into ``report``."""
    rows = con.execute(
        "SELECT alert_id, state FROM alert_delivery WHERE subscriber=? AND channel=? ORDER BY alert_id",
        (sub.name, ch),
    ).fetchall()
    todo = [a for a, state in rows if a in alerts and state != "delivered"]
    report.already_delivered += sum(1 for a, state in rows if a in alerts and state == "delivered")
    down = False
    for ids in _batches(todo, alerts, digest=ch == "email" and sub.digest):
        if down:
            # endpoint down: do not spend the backoff on every alert; they stay pending for
            # the next pass
            report.pending += len(ids)
            continue
        ids = [a for a in ids if _claim(con, (a, sub.name, ch), retry=retry)]
        if not ids:
            continue
        state, n, error = _attempt(
            chans[ch],
            [alerts[a] for a in ids],
            sub,
            max_attempts=max(params.max_attempts, 1),
            backoff_s=params.backoff_s,
            backoff_max_s=params.backoff_max_s,
            sleep=sleep,
        )
        _finish(con, [(a, sub.name, ch) for a in ids], state, n, error)
        setattr(report, state, getattr(report, state) + len(ids))
        if error and state != "delivered":
            report.errors.append(f"{sub.name}/{ch}: {error}")
        down = state == "pending"
