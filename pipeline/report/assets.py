"""Vendored web assets, so a map opens with no network.

folium links Leaflet, jQuery, Bootstrap and Font Awesome from CDNs. Our maps use only Leaflet
(and jQuery, which folium's popups call); both are committed under ``pipeline/data/vendor/``
(Leaflet 1.9.4, BSD-2-Clause; jQuery 3.7.1, MIT; from the npm registry, see the README there)
and inlined into the HTML. Checksums are pinned so a corrupted or swapped file is refused.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib.resources import files

from pipeline.core.errors import PipelineError

#: path under pipeline/data/vendor -> SHA-256 of the file as published on npm
_L = "leaflet-1.9.4"
VENDORED = {
    f"{_L}/leaflet.js": "db49d009c841f5ca34a888c96511ae936fd9f5533e90d8b2c4d57596f4e5641a",
    f"{_L}/leaflet.css": "a7837102824184820dfa198d1ebcd109ff6d0ff9a2672a074b9a1b4d147d04c6",
    f"{_L}/images/layers.png": "1dbbe9d028e292f36fcba8f8b3a28d5e8932754fc2215b9ac69e4cdecf5107c6",
    f"{_L}/images/layers-2x.png": "066daca850d8ffbef007af00b06eac0015728dee279c51f3cb6c716df7c42edf",
    f"{_L}/images/marker-icon.png": "574c3a5cca85f4114085b6841596d62f00d7c892c7b03f28cbfa301deb1dc437",
    "jquery-3.7.1/jquery.min.js": "fc9a93dd241f6b045cbff0481cf4e1901becd0e12fb45166a8f17f95823f0b1a",
}

_SOURCE_MAP = re.compile(r"^\s*//# sourceMappingURL=.*$", re.MULTILINE)
_REMOTE = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//[^>]*>""", re.I)


class AssetError(PipelineError):
    """A vendored web asset is missing or altered, or a page still links a remote script."""


def _read(name: str) -> bytes:
    try:
        data = (files("pipeline") / "data" / "vendor" / name).read_bytes()
    except FileNotFoundError:
        raise AssetError(
            f"Vendored asset pipeline/data/vendor/{name} is missing. Reinstall asm-monitor "
            "(pip install -e .) or restore the file from git."
        ) from None
    if hashlib.sha256(data).hexdigest() != VENDORED[name]:
        raise AssetError(
            f"Vendored asset pipeline/data/vendor/{name} does not match its pinned SHA-256. "
            "Restore it from git; to upgrade, follow pipeline/data/vendor/README.md."
        )
    return data


def _text(name: str) -> str:
    # a sourceMappingURL would make devtools fetch a file that does not exist offline
    return _SOURCE_MAP.sub("", _read(name).decode("utf-8"))


@functools.cache
def leaflet_css() -> str:
    """Leaflet's stylesheet with its images inlined as ``data:`` URIs."""
    css = _text(f"{_L}/leaflet.css")
    for img in ("layers.png", "layers-2x.png", "marker-icon.png"):
        uri = "data:image/png;base64," + base64.b64encode(_read(f"{_L}/images/{img}")).decode()
        css = css.replace(f"url(images/{img})", f"url({uri})")
    return css


@functools.cache
def inline_head() -> str:
    """``<style>``/``<script>`` blocks with Leaflet and jQuery, for the page ``<head>``."""
    js = [_text(f"{_L}/leaflet.js"), _text("jquery-3.7.1/jquery.min.js")]
    # a literal "</script" inside the libraries would end the block early
    safe = [s.replace("</script", "<\\/script") for s in js]
    scripts = "".join(f"<script>{s}</script>\n" for s in safe)
    return f"<style>{leaflet_css()}</style>\n{scripts}"


def assert_offline(page: str) -> None:
    """Raise :class:`AssetError` when ``page`` links any remote script or stylesheet."""
    found = _REMOTE.findall(page)
    if found:
        raise AssetError(
            f"The page links {len(found)} remote asset(s), e.g. {found[0][:120]}. A plugin added a CDN link; "
            "vendor the asset under pipeline/data/vendor/ and inline it in pipeline/report/assets.py."
        )
