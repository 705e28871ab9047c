"""A loopback HTTP server base: thread, request log, fault injection, byte ranges.

Why a base of our own and not a mock library: the clients under test (pystac-client,
sentinelhub-py, GDAL's ``/vsicurl/`` through rasterio and odc-stac) must talk real HTTP, with
their own retries, timeouts and range reads. The server binds 127.0.0.1 on a free port, serves
from a daemon thread, and stops (waking any stalled handler) when the fixture ends. Every request
is recorded for assertions, an exception in a handler answers 500 *and* lands in ``errors`` so
the fixture can fail the test, and a request budget stops a client that loops forever.
"""

from __future__ import annotations

import json
import math
import re
import threading
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 16 * 1024 * 1024


@dataclass
class RecordedRequest:
    """One request as the server saw it; ``status`` is filled in once answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int | None = None

    @property
    def params(self) -> dict[str, str]:
        """The query string with the last value of each key."""
        return {k: v[-1] for k, v in self.query.items()}

    def json(self) -> Any:
        """The body parsed as JSON (None when empty)."""
        return json.loads(self.body) if self.body else None

    def form(self) -> dict[str, str]:
        """The body parsed as ``application/x-www-form-urlencoded``."""
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}


@dataclass
class Reply:
    """What a route answers."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, doc: Any, *, content_type: str = "application/json", **headers: str) -> Reply:
    return Reply(
        status, json.dumps(doc).encode(), content_type, {k.replace("_", "-"): v for k, v in headers.items()}
    )


def bytes_reply(data: bytes, range_header: str | None, content_type: str) -> Reply:
    """``data`` whole (200) or one byte range (206, RFC 9110 section 14), as GDAL's /vsicurl/ needs.

    A multi-range request gets the whole body (200), which RFC 9110 allows and GDAL accepts;
    an unsatisfiable range gets 416 with ``Content-Range: bytes */size``.
    """
    size = len(data)
    headers = {"Accept-Ranges": "bytes"}
    if not range_header:
        return Reply(200, data, content_type, headers)
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", range_header)
    if match is None or match.group(1) == match.group(2) == "":
        return Reply(200, data, content_type, headers)
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return Reply(416, b"", content_type, {**headers, "Content-Range": f"bytes */{size}"})
    return Reply(
        206, data[start : end + 1], content_type, {**headers, "Content-Range": f"bytes {start}-{end}/{size}"}
    )


@dataclass
class _Fault:
    status: int | None
    """HTTP status to answer, or None to stall and then answer normally."""
    seconds: float
    retry_after_s: float | None
    path: str | None
    remaining: int


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackServer


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle keep-alive connection does not hold a thread for longer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is the record; stderr noise helps nobody

    def _serve(self) -> None:
        length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        req = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k: v for k, v in self.headers.items()},
            body=body,
        )
        reply = self.server.owner._dispatch(req)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        try:
            if self.command != "HEAD":
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): that is the point

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve


class LoopbackServer:
    """Base of the emulators; subclasses implement :meth:`route` (and may restyle faults).

    Parameters
    ----------
    delay_s
        Seconds every request waits before it is answered (a slow service).
    max_requests
        Request budget: beyond it every request answers 503 and an error is recorded, so a
        client stuck in a paging or retry loop fails the test instead of hanging it.
    """

    name = "loopback"

    def __init__(self, *, delay_s: float = 0.0, max_requests: int = 20_000) -> None:
        self.delay_s = delay_s
        self.max_requests = max_requests
        self.errors: list[str] = []
        """Tracebacks of exceptions raised while handling requests (emulator bugs)."""
        self._log: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> Self:
        """Bind 127.0.0.1 on a free port and serve from a daemon thread."""
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-server",
            daemon=True,
        )  # a short poll: shutdown() waits for it, once per test
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake stalled handlers and release the port."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        if self._httpd is None:
            raise RuntimeError(
                f"{self.name} server is not running: call start() or use it as a context manager"
            )
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # request log -----------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._log)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Requests whose path starts with ``path`` (and with ``method`` when given)."""
        return [
            r for r in self.requests if r.path.startswith(path) and (method is None or r.method == method)
        ]

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    # faults ----------------------------------------------------------------------------------
    def fail_next(
        self, status: int = 500, *, retry_after: float | None = None, times: int = 1, path: str | None = None
    ) -> None:
        """Answer the next ``times`` requests (to paths starting with ``path``) with ``status``.

        ``retry_after`` is in seconds; each emulator writes it the way its service does (HTTP
        delta-seconds for STAC, milliseconds for Sentinel Hub).
        """
        with self._lock:
            self._faults.append(_Fault(status, 0.0, retry_after, path, times))

    def stall_next(self, seconds: float, *, times: int = 1, path: str | None = None) -> None:
        """Hold the next ``times`` matching requests ``seconds`` before answering (client timeouts)."""
        with self._lock:
            self._faults.append(_Fault(None, seconds, None, path, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and (fault.path is None or path.startswith(fault.path)):
                    fault.remaining -= 1
                    return fault
        return None

    def fault_reply(self, req: RecordedRequest, status: int, retry_after_s: float | None) -> Reply:
        """The body of an injected failure; subclasses answer in their service's error format."""
        headers = {} if retry_after_s is None else {"Retry-After": str(math.ceil(retry_after_s))}
        return json_reply(status, {"code": str(status), "description": "injected fault"}, **headers)

    # dispatch --------------------------------------------------------------------------------
    def route(self, req: RecordedRequest) -> Reply:
        raise NotImplementedError

    def _dispatch(self, req: RecordedRequest) -> Reply:
        with self._lock:
            self._log.append(req)
            over_budget = len(self._log) > self.max_requests
        if over_budget:
            self.errors.append(f"request budget of {self.max_requests} exhausted at {req.method} {req.path}")
            req.status = 503
            return json_reply(
                503, {"code": "503", "description": "request budget exhausted: is a client looping?"}
            )
        if self.delay_s:
            self._stopping.wait(self.delay_s)
        reply = self._answer(req)
        req.status = reply.status
        return reply

    def _answer(self, req: RecordedRequest) -> Reply:
        fault = self._take_fault(req.path)
        if fault is not None and fault.status is None:
            if self._stopping.wait(fault.seconds):  # woken by stop(): the client gave up long ago
                return json_reply(503, {"code": "503", "description": "server stopping"})
        elif fault is not None and fault.status is not None:
            return self.fault_reply(req, fault.status, fault.retry_after_s)
        try:
            return self.route(req)
        except Exception:
            self.errors.append(f"{req.method} {req.path}\n{traceback.format_exc()}")
            return json_reply(500, {"code": "500", "description": "emulator error (see server.errors)"})
