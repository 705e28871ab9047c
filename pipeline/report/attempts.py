"""One batch of alerts tried on one channel: attempts with backoff or ``Retry-After``, and
a failure that stays with its batch (issue 15). Used by :mod:`pipeline.report.delivery`."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from pipeline.report.subscriptions import Subscription
from pipeline.report.transport import DeliveryError
from pipeline.report.webhook_url import scrub

log = logging.getLogger(__name__)


class Channel(Protocol):
    """A way to reach a subscriber. ``send`` raises DeliveryError when an attempt fails. A
    channel that can send a backlog as one digest has ``send_digest`` (same arguments); one
    without gets the backlog through ``send``."""

    name: str

    def send(self, alerts: Sequence[Mapping[str, Any]], *, sub: Subscription) -> None: ...


def backlog_ids(alerts: Sequence[Mapping[str, Any]], *, max_age_days: int) -> set[str]:
    """Ids of the ``alerts`` whose incident was last seen more than ``max_age_days`` before
    the newest evidence of the run that queued them (the latest ``last_seen`` of that run's
    alerts, per ``run_id`` and AOI): the backlog a first run or a backfill finds. Counted from
    the run's evidence, not today's date, so the newest findings of a backfill over imagery or
    detection files published months late still go out one by one. An alert without a
    readable ``last_seen`` is never backlog; ``max_age_days`` 0 = no backlog."""
    if max_age_days <= 0:
        return set()
    seen: dict[str, date] = {}
    for a in alerts:
        day = _day(a.get("last_seen"))
        if day is not None:
            seen[str(a["alert_id"])] = day
    newest: dict[tuple[str, str], date] = {}
    for a in alerts:
        if str(a["alert_id"]) in seen:
            key = (str(a.get("run_id")), str(a.get("aoi_id")))
            newest[key] = max(newest.get(key, date.min), seen[str(a["alert_id"])])
    limit = timedelta(days=max_age_days)
    return {
        str(a["alert_id"])
        for a in alerts
        if str(a["alert_id"]) in seen
        and newest[(str(a.get("run_id")), str(a.get("aoi_id")))] - seen[str(a["alert_id"])] > limit
    }


def _day(value: object) -> date | None:
    """``2024-12-31`` (or a datetime's first ten characters) as a date; None otherwise."""
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


@dataclass(frozen=True)
class Outcome:
    """How one batch ended: its ledger state, attempts made, last error, when the receiver
    may be tried again (``Retry-After``) and the message id used (e-mail)."""

    state: str
    attempts: int
    error: str | None = None
    not_before: str | None = None
    message_id: str | None = None


def attempt(
    channel: Channel,
    batch: list[dict[str, Any]],
    sub: Subscription,
    *,
    max_attempts: int,
    backoff_s: float,
    backoff_max_s: float,
    sleep: Callable[[float], None],
    backlog: bool = False,
) -> Outcome:
    """Try up to ``max_attempts`` times with exponential backoff, or the ``Retry-After`` the
    receiver asked for when that is no longer than ``backoff_max_s``; a longer one ends the
    attempts (``not_before`` set). A ``backlog`` batch goes as one digest (``send_digest``)."""
    error = None
    send = getattr(channel, "send_digest", channel.send) if backlog else channel.send
    for k in range(max_attempts):
        try:
            send(batch, sub=sub)
            return Outcome("delivered", k + 1)
        except DeliveryError as exc:
            error = str(exc)
            log.warning("%s to %s, attempt %d/%d: %s", channel.name, sub.name, k + 1, max_attempts, error)
            if not exc.retryable:
                return Outcome("failed", k + 1, error)
            wait = min(backoff_s * 2**k, backoff_max_s)
            if exc.retry_after_s is not None:
                if exc.retry_after_s > backoff_max_s or k + 1 == max_attempts:
                    until = datetime.now(UTC) + timedelta(seconds=exc.retry_after_s)
                    return Outcome("pending", k + 1, error, until.isoformat(timespec="seconds"))
                wait = max(wait, exc.retry_after_s)
            if k + 1 < max_attempts:
                sleep(wait)
    return Outcome("pending", max_attempts, error)


def attempt_safely(channel: Channel, batch: list[dict[str, Any]], sub: Subscription, **kw: Any) -> Outcome:
    """:func:`attempt`, where anything but a :class:`DeliveryError` (a payload the channel
    cannot render, a header the mail library refuses) fails this batch alone, with the
    error kept, instead of ending the pass for every other alert."""
    try:
        return attempt(channel, batch, sub, **kw)
    except Exception as exc:  # the pass must go on; the error is recorded on these rows
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        detail = scrub(f"{type(exc).__name__}: {exc}", sub.webhook_url)
        # the scrubbed message and where it was raised, not the traceback: its text could
        # hold the URL's token
        log.error("%s to %s: %s (at %s:%s)", channel.name, sub.name, detail, frame.filename, frame.lineno)
        return Outcome(
            "failed",
            1,
            f"{detail}. This alert cannot be sent as it is; fix the alert or the subscription, then "
            "run `asm-monitor alerts --run DIR --retry`.",
        )
