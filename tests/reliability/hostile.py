"""Hostile endpoints for the delivery-hardening tests (issue 15): an HTTP endpoint whose
answer is a function (redirect, 429 with Retry-After, a 200 MB body, a 1-byte trickle), an
SMTP server that records envelopes or "loses" its reply, a TCP server that trickles, a
self-signed certificate for a TLS endpoint, and a fake DNS for named hosts."""

from __future__ import annotations

import json
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import geopandas as gpd
from shapely.geometry import Point

from pipeline.comply.flags import FLAG_COLUMNS
from pipeline.core.config import Settings
from pipeline.report.alerts import alert_payloads, write_outbox

Answer = Callable[[BaseHTTPRequestHandler, int], None]


@dataclass
class Seen:
    """One request as the endpoint saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


class Endpoint:
    """An HTTP endpoint on ``host`` (a loopback address). ``answer(handler, n)`` writes the
    answer to the n-th request (0-based); every request is kept in ``seen``, every TCP
    connection counted in ``connections``."""

    def __init__(
        self,
        answer: Answer | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.answer = answer or status(204)
        self.seen: list[Seen] = []
        self.sent_bytes = 0
        self.connections = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with outer.lock:
                    outer.seen.append(Seen(self.command, self.path, headers, body))
                    k = len(outer.seen) - 1
                outer.answer(self, k)
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _any

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def verify_request(self, request: Any, client_address: Any) -> bool:
                outer.connections += 1  # every TCP connection, even one that never speaks HTTP
                return True

        self.server = Server((host, port), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://{host}:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def status(code: int, **headers: str) -> Answer:
    """Answer every request with ``code`` (and ``headers``), empty body."""

    def answer(h: BaseHTTPRequestHandler, n: int) -> None:
        h.send_response(code)
        for k, v in headers.items():
            h.send_header(k.replace("_", "-"), v)
        h.send_header("content-length", "0")
        h.end_headers()

    return answer


def script(*answers: Answer, then: Answer | None = None) -> Answer:
    """The n-th answer for the n-th request, ``then`` (204) afterwards."""

    def answer(h: BaseHTTPRequestHandler, n: int) -> None:
        (answers[n] if n < len(answers) else then or status(204))(h, n)

    return answer


def huge_body(endpoint_holder: list[Endpoint], total: int = 200 * 2**20) -> Answer:
    """200 OK announcing ``total`` bytes and sending 64 KiB chunks until the client leaves;
    the bytes pushed into the socket are added to the endpoint's ``sent_bytes``."""
    chunk = b"x" * 65536

    def answer(h: BaseHTTPRequestHandler, n: int) -> None:
        h.send_response(200)
        h.send_header("content-type", "text/plain")
        h.send_header("content-length", str(total))
        h.end_headers()
        sent = 0
        try:
            while sent < total:
                h.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass
        finally:
            endpoint_holder[0].sent_bytes += sent

    return answer


def trickle(every_s: float) -> Answer:
    """A whole ``204`` answer written one byte every ``every_s`` seconds."""
    raw = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"

    def answer(h: BaseHTTPRequestHandler, n: int) -> None:
        try:
            for i in range(len(raw)):
                h.wfile.write(raw[i : i + 1])
                h.wfile.flush()
                time.sleep(every_s)
        except OSError:
            pass

    return answer


class TrickleTcp:
    """A TCP server on 127.0.0.1 that writes ``greeting`` one byte every ``every_s``
    seconds to each connection (an SMTP server stalling the run), then waits."""

    def __init__(self, greeting: bytes, *, every_s: float) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self.greeting, self.every_s = greeting, every_s
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                for i in range(len(self.greeting)):
                    if self.stop.is_set():
                        return
                    conn.sendall(self.greeting[i : i + 1])
                    time.sleep(self.every_s)
                self.stop.wait(30)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


class Envelopes:
    """aiosmtpd handler keeping (rcpt_tos, raw message); the first ``lose_replies`` DATA
    commands are stored and then answered 451, as when the reply is lost after the
    message was taken (the sender must try again)."""

    def __init__(self, *, lose_replies: int = 0) -> None:
        self.got: list[tuple[list[str], bytes]] = []
        self.lose_replies = lose_replies

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.got.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        if self.lose_replies > 0:
            self.lose_replies -= 1
            return "451 4.3.0 reply lost"
        return "250 OK"


def start_smtp(handler: Any, port: int) -> Any:
    from aiosmtpd.controller import Controller

    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    return ctl


def self_signed(folder: Path) -> tuple[Path, Path]:
    """(cert, key) for CN=localhost with SANs localhost and 127.0.0.1, made by openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class FakeDns:
    """Replaces ``socket.getaddrinfo`` for names in ``answers`` (name -> list of address
    lists: the k-th lookup gets the k-th list, the last one repeats); other names resolve
    for real. ``calls`` counts lookups per name."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: dict[str, int] = {}
        self.real = socket.getaddrinfo

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self.real(host, port, *args, **kwargs)
        k = self.calls.get(name, 0)
        self.calls[name] = k + 1
        lists = self.answers[name]
        out = []
        for addr in lists[min(k, len(lists) - 1)]:
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            sockaddr = (addr, int(port or 0), 0, 0) if fam == socket.AF_INET6 else (addr, int(port or 0))
            out.append((fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return out


# ---- a run folder with an outbox, and the delivery ledger ----------------------------


def _flag(fid: str, rule: str, sev: str, lon: float) -> dict[str, object]:
    return {
        "flag_id": fid, "rule_id": rule, "rule_version": "1", "rulebook_version": "test",
        "severity": sev, "status": "new", "aoi_id": "rel-aoi", "detection_ids": "d1",
        "area_ha": 5.0, "first_seen": "2024-12-31", "last_seen": "2024-12-31", "periods": "2024",
        "reason": f"5 ha of mining ({fid})", "lon": lon, "lat": 1.0, "run_id": "rel-run",
        "geometry": Point(lon, 1.0).buffer(0.002),
    }  # fmt: skip


def make_run(folder: Path, n: int = 3) -> Path:
    """OUT/rel-aoi with an outbox of ``n`` (<= 3) high/medium alerts, as a run leaves it."""
    rows = [
        _flag("cccc000000000001", "unregistered_mining", "high", -51.6),
        _flag("cccc000000000002", "mining_in_protected_area", "high", -51.7),
        _flag("cccc000000000003", "clearing_outside_licence", "medium", -51.8),
    ][:n]
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)
    flags = gpd.GeoDataFrame(
        frame.reindex(columns=[*FLAG_COLUMNS, "geometry"]), geometry="geometry", crs=4326
    )
    run = folder / "out" / "rel-aoi"
    write_outbox(
        alert_payloads(flags, map_link="rel-aoi/map.html", aoi_name="Rel"), run / "alerts" / "outbox"
    )
    (run / "run.json").write_text(json.dumps({"aoi_id": "rel-aoi", "run_id": "rel-run"}))
    return run


def outbox_ids(run: Path) -> list[str]:
    return sorted(p.stem for p in (run / "alerts" / "outbox").glob("*.json"))


def edit_alert(run: Path, alert_id: str, **changes: Any) -> None:
    """Change fields of one outbox alert (``None`` removes the field)."""
    path = run / "alerts" / "outbox" / f"{alert_id}.json"
    doc = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    path.write_text(json.dumps(doc))


def settings(folder: Path, subs: list[dict[str, Any]], **alerts: Any) -> Settings:
    base = {"backoff_s": 0.01, "backoff_max_s": 0.05, "max_attempts": 3, "timeout_s": 2.0}
    return Settings().with_overrides(
        {"state_db": str(folder / "state.sqlite"), "alerts": {**base, **alerts, "subscriptions": subs}}
    )


def rows(folder: Path) -> list[dict[str, Any]]:
    """Every ``alert_delivery`` row of the state file."""
    con = sqlite3.connect(folder / "state.sqlite")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM alert_delivery ORDER BY alert_id")]
    finally:
        con.close()


def states(folder: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows(folder):
        out[r["state"]] = out.get(r["state"], 0) + 1
    return out
