"""One HTTP(S) POST to an address that was checked, under a total deadline, reading at most
a capped number of answer bytes, never following a redirect (issue 15).

The connection goes to the address :func:`pipeline.report.webhook_url.resolve` checked,
while the ``Host`` header, TLS SNI and the certificate check use the host name of the URL
(so DNS is asked once per attempt and a changed answer cannot redirect the request). No
proxy from the environment is used: the checked address is the one connected to.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline.report.transport import Deadline, SocketGetter
from pipeline.report.webhook_url import WebhookUrl

_CHUNK = 16 * 1024


@dataclass(frozen=True)
class HttpAnswer:
    """What the receiver answered."""

    status: int
    location: str | None
    """``Location`` header (a redirect is reported, never followed)."""
    retry_after: str | None
    """``Retry-After`` header, as sent."""
    body_read: int
    """Bytes of the body read (at most the cap; the rest is left unread)."""
    truncated: bool
    """True when the body was longer than the cap."""
    seconds: float


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP, or HTTPS with ``context``, to ``address``; Host, SNI and the certificate check
    use ``host``."""

    def __init__(
        self, host: str, port: int, *, address: str, timeout: float, context: ssl.SSLContext | None
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address
        self._context = context
        self.default_port = 443 if context is not None else 80  # Host header without it

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        if self._context is not None:
            tls = self._context.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
            self.sock = tls
            tls.do_handshake()


def post(
    url: WebhookUrl,
    addresses: Sequence[str],
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout_s: float,
    deadline: Deadline,
    max_body: int,
    context: ssl.SSLContext,
) -> HttpAnswer:
    """POST ``body`` to ``url`` at the first of ``addresses`` that accepts a connection.

    Raises
    ------
    DeadlineExceeded
        ``deadline`` passed first (a trickling or stalled receiver).
    OSError, http.client.HTTPException
        Connection refused, TLS refused (``ssl.SSLCertVerificationError``), socket timeout,
        broken answer.
    """
    t0 = time.monotonic()
    last: OSError | None = None
    for address in addresses:
        deadline.check()
        conn = _PinnedConnection(
            url.host,
            url.port,
            address=address,
            timeout=min(timeout_s, deadline.remaining()),
            context=context if url.scheme == "https" else None,
        )
        deadline.watch(_socket_of(conn))
        try:
            try:
                conn.connect()
            except ssl.SSLError:
                raise
            except OSError as exc:
                last = exc  # this address does not answer: try the next one
                continue
            return _exchange(conn, url, body, headers, deadline=deadline, max_body=max_body, t0=t0)
        except (OSError, http.client.HTTPException):
            deadline.check()  # a read woken by the deadline reads as a broken connection
            raise
        finally:
            conn.close()
    deadline.check()
    raise last or ConnectionError("no address to connect to")


def _socket_of(conn: http.client.HTTPConnection) -> SocketGetter:
    return lambda: conn.sock


def _exchange(
    conn: _PinnedConnection,
    url: WebhookUrl,
    body: bytes,
    headers: Mapping[str, str],
    *,
    deadline: Deadline,
    max_body: int,
    t0: float,
) -> HttpAnswer:
    conn.request("POST", url.target, body=body, headers=dict(headers))
    resp = conn.getresponse()
    # the status line and headers are the answer; the body is read only up to the cap, and a
    # body that breaks off (or outlives the deadline) does not undo a status already given
    read, truncated = 0, False
    try:
        while read < max_body:
            chunk = resp.read(min(_CHUNK, max_body - read))
            if not chunk:
                break
            read += len(chunk)
            deadline.check()
        truncated = read >= max_body and not resp.isclosed()
    except (OSError, http.client.HTTPException):
        truncated = True
    return HttpAnswer(
        status=resp.status,
        location=resp.getheader("location"),
        retry_after=resp.getheader("retry-after"),
        body_read=read,
        truncated=truncated,
        seconds=time.monotonic() - t0,
    )
