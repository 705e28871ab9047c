"""One batch of alerts tried on one channel: attempts with backoff or ``Retry-After``, and
a failure that stays with its batch (issue 15). Used by :mod:`pipeline.report.delivery`."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pipeline.report.subscriptions import Subscription
from pipeline.report.transport import DeliveryError
from pipeline.report.webhook_url import scrub

log = logging.getLogger(__name__)


class Channel(Protocol):
    """A way to reach a subscriber. ``send`` raises DeliveryError when an attempt fails."""

    name: str

    def send(self, alerts: Sequence[Mapping[str, Any]], *, sub: Subscription) -> None: ...


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
) -> Outcome:
    """Try up to ``max_attempts`` times with exponential backoff, or the ``Retry-After`` the
    receiver asked for when that is no longer than ``backoff_max_s``; a longer one ends the
    attempts (``not_before`` set)."""
    error = None
    for k in range(max_attempts):
        try:
            channel.send(batch, sub=sub)
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
