"""Helpers of the reliability suite: the Sentinel Hub emulator of tests/ingest (loaded from
its conftest, not copied), a programmable Standard Webhooks receiver and an SMTP server that
requires a login."""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

_spec = importlib.util.spec_from_file_location(
    "_asm_sh_emulator", Path(__file__).resolve().parents[1] / "ingest" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
sh_emulator = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = sh_emulator
_spec.loader.exec_module(sh_emulator)

WEBHOOK_SECRET = "whsec_cmVsaWFiaWxpdHktc3VpdGUtd2ViaG9vay1zZWNyZXQh"
SMTP_PASSWORD = "smtp-pa55-reliability-7f3a"
SH_SECRET = "sh-client-secret-reliability-91c2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """An NGO webhook endpoint. ``script`` lists what to do with the next requests:
    an HTTP status (e.g. 500) or ``"slow"`` (stall ``stall_s`` then answer 204, after the
    sender has given up); afterwards every verified request is accepted (204). Accepted
    bodies are kept by ``webhook-id`` (a Standard Webhooks receiver dedupes on it)."""

    def __init__(self, *, script: list[Any] | None = None, stall_s: float = 1.0, port: int = 0) -> None:
        self.verifier = Webhook(WEBHOOK_SECRET)
        self.script = list(script or [])
        self.stall_s = stall_s
        self.requests = 0
        self.accepted: dict[str, dict[str, Any]] = {}
        self.deliveries: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with outer.lock:
                    outer.requests += 1
                    action = outer.script.pop(0) if outer.script else 204
                if action == "slow":
                    time.sleep(outer.stall_s)
                    action = 204
                if action != 204:
                    self.send_response(int(action))
                    self.end_headers()
                    return
                try:
                    doc = outer.verifier.verify(body, dict(self.headers.items()))
                except WebhookVerificationError:
                    self.send_response(401)
                    self.end_headers()
                    return
                with outer.lock:
                    outer.deliveries.append(self.headers["webhook-id"])
                    outer.accepted[self.headers["webhook-id"]] = doc
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """aiosmtpd handler keeping every message and the logins it saw."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(bytes(envelope.content))
        return "250 OK"


def start_smtp(box: Mailbox, port: int) -> Any:
    """A real SMTP server on ``port`` that requires AUTH LOGIN/PLAIN with SMTP_PASSWORD."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        box.logins.append((login, password))
        return AuthResult(success=password == SMTP_PASSWORD, handled=False)

    ctl = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
        auth_required=True,
    )
    ctl.start()
    return ctl


# ---- a small protected reserve with external detections, for whole CLI runs -----------

SITE_LON, SITE_LAT = -51.5, 1.0
#: metres per degree at the site (spherical; good to a few per mille for test squares)
_M_PER_DEG = 111_320.0


def _square(east_m: float, north_m: float, side_m: float) -> list[list[float]]:
    """A square ring (lon, lat) of ``side_m`` metres whose south-west corner is ``east_m``,
    ``north_m`` metres from the reserve's centre."""
    import math

    kx = _M_PER_DEG * math.cos(math.radians(SITE_LAT))
    x0, y0 = SITE_LON + east_m / kx, SITE_LAT + north_m / _M_PER_DEG
    x1, y1 = x0 + side_m / kx, y0 + side_m / _M_PER_DEG
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def write_detections(data: Path, period: str, squares: list[tuple[float, float, float]]) -> Path:
    """``detections/rel/mine_<period>.geojson`` (native format) with one mining polygon per
    ``(east_m, north_m, side_m)`` square, all dated ``period``."""
    import json

    folder = data / "detections" / "rel"
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"period": period},
                "geometry": {"type": "Polygon", "coordinates": [_square(*sq)]},
            }
            for sq in squares
        ],
    }
    path = folder / f"mine_{period}.geojson"
    path.write_text(json.dumps(doc))
    return path


def write_reserve(folder: Path, aoi_id: str = "rel-reserve") -> Path:
    """A 4 x 4 km protected reserve AOI whose only input is ``detections/rel/mine_*.geojson``."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    ring = _square(-2000, -2000, 4000)
    doc = {
        "type": "Feature",
        "properties": {
            "aoi_id": aoi_id,
            "name": "Reliability reserve",
            "designation": "biological reserve",
            "country": "Brazil",
            "wdpa_id": None,
            "protected": True,
            "inputs": {"detections": {"path": "detections/rel/mine_*.geojson", "format": "native"}},
        },
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    path = folder / f"{aoi_id}.geojson"
    path.write_text(json.dumps(doc))
    return path


def reserve_site(root: Path, *, period: str = "2024", aoi_id: str = "rel-reserve") -> list[str]:
    """The reserve with its 2024 detections under ``root`` (``aoi/``, ``data/``); returns the
    ``asm-monitor`` arguments that run it for ``period`` into ``root/out``."""
    write_reserve(root / "aoi", aoi_id)
    write_detections(root / "data", "2024", [(0, 0, 300), (-1500, 500, 200)])
    return ["--sample-data", str(root / "data"), "--aoi-dir", str(root / "aoi"), "run", "--aoi", aoi_id,
            "--period", period, "--out", str(root / "out"), "--scheduler", "synchronous",
            "--no-progress"]  # fmt: skip
