"""Deliver outbox alerts to subscriptions, exactly once per alert, subscriber and channel.

State lives in table ``alert_delivery`` of the SQLite state file (WAL mode). A row is
``pending`` until its channel accepts it (``delivered``), or refuses it for good
(``failed``: a 4xx other than 408/429, or no SMTP host; ``--retry`` reopens those). A row is
claimed (``sending``) before the attempt, so two delivery passes never send the same row;
a claim older than :func:`stale_claim_s` (a pass killed while sending) is taken over by the
next pass, which the nightly ``run`` makes every night (:mod:`pipeline.ops.night_delivery`). When one alert
still fails after every attempt, the pass stops trying that subscriber's channel (the rest
stay pending), so a dead endpoint costs one backoff sequence, not one per alert. Webhook
retries reuse the same ``webhook-id``, so a receiver that did get a message whose reply was
lost recognises the retry; a resent e-mail keeps its ``Message-ID``.

Issue 15: one alert that a channel cannot render or send (a broken payload, a header the
mail library refuses) fails alone (``failed``, with the error) and the pass goes on. A
``Retry-After`` on 429/503 is waited in the pass when it is no longer than ``backoff_max_s``;
a longer one (capped at :data:`~pipeline.report.transport.RETRY_AFTER_MAX_S`) ends the pass
for that subscriber and channel and is stored as ``not_before``: later passes leave the
receiver alone until then (``--retry`` does not wait). Each attempt is bounded by
:data:`DELIVERY_DEADLINE_S` (``[alerts] deadline_s`` when that setting exists).

Issue 18 (a first run or a backfill): alerts whose incident was last seen more than
``[alerts] max_age_days`` before the newest evidence of the run that queued them
(:func:`~pipeline.report.attempts.backlog_ids`) are not sent one by one; each subscription and
channel gets them as one digest per pass (one webhook request listing them, one e-mail). Each
alert is still recorded once per subscriber and channel: the digest's rows become
``delivered`` together, with the digest's message id.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.core.config import AlertParams, Settings, secret_from_env
from pipeline.core.errors import ConfigError, DataNotFoundError
from pipeline.report.attempts import Channel, Outcome, attempt_safely, backlog_ids
from pipeline.report.mail import EmailChannel, message_id
from pipeline.report.subscriptions import Subscription, parse_subscriptions
from pipeline.report.transport import DELIVERY_DEADLINE_S
from pipeline.report.webhook import WebhookChannel, digest_id, webhook_id

log = logging.getLogger(__name__)

#: Shortest age (s) of a ``sending`` claim before another pass takes it over; longer when
#: one batch's attempts may take longer (:func:`stale_claim_s`).
STALE_CLAIM_S = 600
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
    not_before  TEXT,
    PRIMARY KEY (alert_id, subscriber, channel)
);
CREATE INDEX IF NOT EXISTS alert_delivery_state ON alert_delivery (state, aoi_id);
"""
#: Columns added after the first release, with their definitions (added to older files).
_ADDED_COLUMNS = {"not_before": "TEXT"}
#: Fields every outbox alert needs before it can be matched to subscriptions.
_REQUIRED = ("alert_id", "aoi_id", "rule_id", "severity")


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


def _deadline_s(params: AlertParams) -> float:
    """``[alerts] deadline_s`` once that setting exists, else :data:`DELIVERY_DEADLINE_S`."""
    value = getattr(params, "deadline_s", None)
    return float(value) if value else DELIVERY_DEADLINE_S


def stale_claim_s(params: AlertParams) -> float:
    """Age after which a ``sending`` claim is a killed pass's, not a live one's: twice the
    longest one batch can take (every attempt to its deadline, every backoff at its
    maximum), at least :data:`STALE_CLAIM_S`. A live pass is never overtaken, so no alert
    is sent twice by two passes."""
    attempts = max(params.max_attempts, 1)
    longest = attempts * _deadline_s(params) + (attempts - 1) * params.backoff_max_s
    return max(float(STALE_CLAIM_S), 2 * longest)


@contextmanager
def ledger(path: Path) -> Iterator[sqlite3.Connection]:
    """Open the state file with the ``alert_delivery`` table (WAL, autocommit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA busy_timeout=30000")
        con.executescript(SCHEMA)
        _add_columns(con)
        yield con
    finally:
        con.close()


def _add_columns(con: sqlite3.Connection) -> None:
    """Add the columns a state file from an older release lacks."""
    have = {row[1] for row in con.execute("PRAGMA table_info(alert_delivery)")}
    for name, kind in _ADDED_COLUMNS.items():
        if name not in have:
            try:
                con.execute(f"ALTER TABLE alert_delivery ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:  # another pass added it meanwhile
                if "duplicate column" not in str(exc):
                    raise


def read_outbox(outbox: Path, *, errors: list[str] | None = None) -> list[dict[str, Any]]:
    """Every alert JSON in ``outbox``, sorted by alert id.

    With ``errors``, a file that is not a readable alert (broken JSON, no ``alert_id``,
    ``aoi_id``, ``rule_id`` or ``severity``) is skipped and named there, so one bad file never
    stops the others; without, it raises.
    """
    if not outbox.is_dir():
        raise DataNotFoundError(
            f"No alert outbox at {outbox}. Pass a run folder OUT_DIR/AOI_ID that `run` wrote."
        )
    out = []
    for p in sorted(outbox.glob("*.json")):
        try:
            alert = json.loads(p.read_text(encoding="utf-8"))
            missing = [k for k in _REQUIRED if not isinstance(alert.get(k), str)]
            if missing:
                raise ValueError(f"no {', '.join(missing)}")
        except (OSError, ValueError, AttributeError) as exc:
            if errors is None:
                raise
            errors.append(
                f"{p}: not a readable alert ({type(exc).__name__}: {exc}); skipped, fix or remove it"
            )
            log.error("%s", errors[-1])
            continue
        out.append(alert)
    return out


def _claim(con: sqlite3.Connection, key: tuple[str, str, str], *, retry: bool, stale_s: float) -> bool:
    stale = (datetime.now(UTC) - timedelta(seconds=stale_s)).isoformat(timespec="seconds")
    states = "('pending','failed')" if retry else "('pending')"
    cur = con.execute(
        f"UPDATE alert_delivery SET state='sending', updated_at=? WHERE alert_id=? AND subscriber=? "
        f"AND channel=? AND (state IN {states} OR (state='sending' AND updated_at < ?))",
        (_now(), *key, stale),
    )
    return cur.rowcount == 1


def _finish(con: sqlite3.Connection, keys: list[tuple[str, str, str]], out: Outcome) -> None:
    now = _now()
    con.execute("BEGIN IMMEDIATE")
    for key in keys:
        con.execute(
            "UPDATE alert_delivery SET state=?, attempts=attempts+?, last_error=?, updated_at=?, "
            "delivered_at=CASE WHEN ?='delivered' THEN ? ELSE delivered_at END, not_before=?, "
            "message_id=COALESCE(?, message_id) WHERE alert_id=? AND subscriber=? AND channel=?",
            (out.state, out.attempts, out.error, now, out.state, now, out.not_before, out.message_id, *key),
        )
    con.execute("COMMIT")


def deliver(
    outbox: Path | Sequence[Path],
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
        ``OUT_DIR/<aoi_id>/alerts/outbox``, or several: their backlog goes out as one digest.
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
    deadline_s = _deadline_s(params)
    chans: Mapping[str, Channel] = channels or {
        "webhook": WebhookChannel(timeout_s=params.timeout_s, deadline_s=deadline_s),
        "email": EmailChannel(params, deadline_s=deadline_s),
    }
    boxes = [outbox] if isinstance(outbox, Path) else list(outbox)
    alerts = {a["alert_id"]: a for box in boxes for a in read_outbox(box, errors=report.errors)}
    backlog = backlog_ids(list(alerts.values()), max_age_days=params.max_age_days)
    with ledger(settings.state_path) as con:
        _queue(con, alerts, subs)
        for sub in subs:
            for ch in sub.channels:
                _deliver_channel(
                    con,
                    chans,
                    ch,
                    alerts,
                    sub,
                    params=params,
                    retry=retry,
                    sleep=sleep,
                    report=report,
                    backlog=backlog,
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
                        webhook_id(alert["alert_id"], sub.name)
                        if ch == "webhook"
                        else message_id([alert["alert_id"]], sub.name),
                        _now(),
                        _now(),
                    ),
                )
    con.execute("COMMIT")


def _batches(
    todo: list[str], alerts: Mapping[str, dict[str, Any]], *, digest: bool, old: set[str]
) -> list[tuple[list[str], bool]]:
    """``(alert ids, backlog)`` per message: the backlog ``old`` (:func:`backlog_ids`) as one
    digest first, then one alert per message, or with ``digest`` one message per AOI."""
    recent = [a for a in todo if a not in old]
    stale = [a for a in todo if a in old]  # none left to send: no (empty) digest at all
    out: list[tuple[list[str], bool]] = [(stale, True)] if stale else []
    if not digest:
        return out + [([a], False) for a in recent]
    by_aoi: dict[str, list[str]] = {}
    for a in recent:
        by_aoi.setdefault(alerts[a]["aoi_id"], []).append(a)
    return out + [(ids, False) for ids in by_aoi.values()]


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
    backlog: set[str],
) -> None:
    """Send ``sub``'s undelivered alerts of ``alerts`` on channel ``ch``, counting into
    ``report``; those in ``backlog`` as one digest."""
    rows = con.execute(
        "SELECT alert_id, state FROM alert_delivery WHERE subscriber=? AND channel=? ORDER BY alert_id",
        (sub.name, ch),
    ).fetchall()
    todo = [a for a, state in rows if a in alerts and state != "delivered"]
    report.already_delivered += sum(1 for a, state in rows if a in alerts and state == "delivered")
    held = None if retry else _held_until(con, sub.name, ch)
    if held and todo:
        report.pending += sum(1 for a, state in rows if a in alerts and state in ("pending", "sending"))
        report.errors.append(f"{sub.name}/{ch}: the receiver asked (Retry-After) to wait until {held}")
        return
    down = False
    batches = _batches(todo, alerts, digest=ch == "email" and sub.digest, old=backlog)
    for ids, as_digest in batches:
        if down:
            # endpoint down: do not spend the backoff on every alert; they stay pending for
            # the next pass
            report.pending += len(ids)
            continue
        ids = [a for a in ids if _claim(con, (a, sub.name, ch), retry=retry, stale_s=stale_claim_s(params))]
        if not ids:
            continue
        out = attempt_safely(
            chans[ch],
            [alerts[a] for a in ids],
            sub,
            max_attempts=max(params.max_attempts, 1),
            backoff_s=params.backoff_s,
            backoff_max_s=params.backoff_max_s,
            sleep=sleep,
            backlog=as_digest,
        )
        if ch == "email":
            out = replace(out, message_id=message_id(ids, sub.name))
        elif as_digest:
            out = replace(out, message_id=digest_id(ids, sub.name))
        _finish(con, [(a, sub.name, ch) for a in ids], out)
        setattr(report, out.state, getattr(report, out.state) + len(ids))
        if out.error and out.state != "delivered":
            report.errors.append(f"{sub.name}/{ch}: {out.error}")
        down = out.state == "pending"


def _held_until(con: sqlite3.Connection, subscriber: str, channel: str) -> str | None:
    """The time before which the receiver asked not to be tried (``Retry-After``), if later
    than now."""
    (until,) = con.execute(
        "SELECT MAX(not_before) FROM alert_delivery WHERE subscriber=? AND channel=? AND state!='delivered'",
        (subscriber, channel),
    ).fetchone()
    return str(until) if until and str(until) > _now() else None
