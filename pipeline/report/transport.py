"""What every alert channel shares: the failed-attempt error, a total deadline per delivery
and the ``Retry-After`` rule (issue 15).

A socket timeout only bounds each read, so a receiver that trickles one byte every few
seconds never trips it; :class:`Deadline` bounds the whole exchange (connect, TLS, request,
answer) by shutting the socket down from a timer thread when the time is up, which wakes the
blocked read.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType

#: Longest one delivery (one attempt: connect, TLS, request, answer) may take (s). Proposed
#: setting: ``[alerts] deadline_s``; :func:`pipeline.report.delivery.deliver` reads it when
#: it exists.
DELIVERY_DEADLINE_S = 30.0
#: Most bytes of a webhook answer read (the rest is never read; the status is what counts).
MAX_RESPONSE_BYTES = 64 * 1024
#: Longest ``Retry-After`` honoured (s): a receiver asking for more is tried again after this.
RETRY_AFTER_MAX_S = 3600.0

SocketGetter = Callable[[], "socket.socket | None"]


class DeliveryError(Exception):
    """One attempt failed; ``retryable`` says whether trying again can help, and
    ``retry_after_s`` how long the receiver asked to be left alone (``Retry-After``)."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class DeadlineExceeded(TimeoutError):
    """The delivery deadline passed before the exchange finished."""


class Deadline:
    """``with Deadline(30) as d:``; ``d.watch(lambda: conn.sock)`` registers where the
    connection's socket is; when the time is up every watched socket is shut down, so a
    read blocked on it returns at once. ``d.expired`` tells afterwards whether it fired."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = threading.Event()
        self._getters: list[SocketGetter] = []
        self._end = time.monotonic() + seconds
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._end = time.monotonic() + self.seconds
        self._timer.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.cancel()

    def watch(self, getter: SocketGetter) -> None:
        """Shut down ``getter()`` when the deadline passes (checked then, so the socket may
        be created or replaced, e.g. by STARTTLS, after this call)."""
        self._getters.append(getter)

    def remaining(self) -> float:
        """Seconds left (at least a millisecond, so it can be used as a socket timeout)."""
        return max(self._end - time.monotonic(), 0.001)

    def check(self) -> None:
        """Raise :class:`DeadlineExceeded` when the time is up."""
        if self.expired.is_set() or time.monotonic() >= self._end:
            self.expired.set()
            raise DeadlineExceeded(f"no complete answer within the delivery deadline of {self.seconds:g} s")

    def _expire(self) -> None:
        self.expired.set()
        for getter in self._getters:
            sock = getter()
            if sock is None:
                continue
            try:
                # the plain socket call: SSLSocket.shutdown would also drop its TLS object
                # under the reading thread
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delay-seconds or an HTTP-date), at
    most :data:`RETRY_AFTER_MAX_S`; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)
