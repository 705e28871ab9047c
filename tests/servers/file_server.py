"""A byte-range static file server for the STAC assets, run as a child process (stdlib only).

Why a separate process: GDAL (rasterio, odc-stac) holds the Python GIL through parts of
``/vsicurl/`` opening (sidecar probes such as ``.aux.xml`` / ``.msk`` when
``GDAL_DISABLE_READDIR_ON_OPEN`` is not ``EMPTY_DIR``), so a server thread in the same
interpreter could never answer and the test would hang for good. Served from another process,
any GDAL configuration a scene source uses works as it would against Earth Search.

Usage: ``python file_server.py ROOT LOG`` serves ``ROOT/<path>`` at ``/assets/<path>`` on
127.0.0.1 (free port), prints its URL on the first line of stdout, appends one JSON line per
request to ``LOG`` and exits when its stdin closes (the parent stopped or died).
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path


def main(argv: list[str]) -> int:
    root, log_path = Path(argv[1]).resolve(), Path(argv[2])
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from loopback import LoopbackServer, RecordedRequest, Reply, bytes_reply, json_reply

    lock = threading.Lock()
    log = log_path.open("a", encoding="utf-8")

    class FileServer(LoopbackServer):
        name = "stac-assets"

        def route(self, req: RecordedRequest) -> Reply:
            if req.method not in ("GET", "HEAD"):
                return json_reply(405, {"code": "MethodNotAllowed", "description": "assets are read-only"})
            target = (root / req.path.removeprefix("/assets/")).resolve()
            if not req.path.startswith("/assets/") or root not in target.parents or not target.is_file():
                return json_reply(404, {"code": "NotFoundError", "description": f"no asset at {req.path}"})
            return bytes_reply(
                target.read_bytes(), req.headers.get("Range"), "image/tiff; application=geotiff"
            )

        def _dispatch(self, req: RecordedRequest) -> Reply:
            reply = super()._dispatch(req)
            line = {
                "method": req.method,
                "path": req.path,
                "query": req.query,
                "headers": req.headers,
                "status": reply.status,
                "errors": self.errors[-1:] if reply.status == 500 else [],
            }
            with lock:
                log.write(json.dumps(line) + "\n")
                log.flush()
            return reply

    server = FileServer().start()
    print(server.url, flush=True)
    try:
        sys.stdin.read()  # returns at EOF: the parent closed the pipe or exited
    finally:
        server.stop()
        log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
