"""Fixtures of the reliability suite: the tests/ingest Sentinel Hub emulator with a
truncated-body fault added."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .relhelp import sh_emulator


@pytest.fixture
def sh_server(sample_data: Path) -> Iterator[tuple[str, Any]]:
    """(base_url, state) of the tests/ingest Sentinel Hub emulator; ``state.truncate`` =
    how many Process answers to cut in half (Content-Length still announces the whole),
    ``state.times`` = (path, time.monotonic()) of every request."""
    state = sh_emulator.ShState(scene=sample_data / "imagery" / "trombetas_s2_l2a.tif")
    state.truncate = 0
    base_handler = sh_emulator._handler(state)

    state.times = []  # (path, monotonic time) of every request, to check waits

    class Handler(base_handler):  # type: ignore[misc,valid-type]
        def do_POST(self) -> None:
            state.times.append((self.path.split("?")[0], time.monotonic()))
            super().do_POST()

        def _send(self, code: int, body: bytes, ctype: str = "application/json", **headers: str) -> None:
            if ctype == "image/tiff" and state.truncate > 0:
                state.truncate -= 1
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            super()._send(code, body, ctype, **headers)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
