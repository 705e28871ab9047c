"""Process API rendering for the Sentinel Hub emulator.

What it does, as Sentinel Hub does: read the evalscript's ``setup()`` (input bands and units,
output band count and ``sampleType``), mosaic the published scenes that intersect
``input.bounds`` within ``dataFilter.timeRange`` (``mosaickingOrder``, ``maxCloudCoverage``) onto
the requested grid, evaluate ``evaluatePixel`` and write one GeoTIFF.

What it cannot do: run JavaScript. ``evaluatePixel`` is evaluated when its body is a single
``return [expr, ...]`` of arithmetic on ``sample.BAND`` (``10000 * s.B04``, ``s.B08 - s.B04``,
...), parsed with Python's ``ast`` and applied to numpy arrays; any other body falls back to
"the input bands in order" (the ``X-Emulator-Evaluation`` response header says which). SCL is
synthesised (0 no data, 9 where B02 > 0.15, 6 where (B03 - B11) / (B03 + B11) > 0, 4 where NDVI >
0.4, else 5); CLM is 1 where B02 > 0.15 (255 no data); CLP is 255 there, else 0.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.crs import CRS
from rasterio.features import geometry_mask
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds
from rasterio.warp import Resampling, reproject, transform_bounds
from shapely.geometry import box, shape

from .filters import in_interval, parse_interval
from .scenes import BANDS, CLOUD_DN, SCALE, Scene

MASKS = ("dataMask", "SCL", "CLM", "CLP")
COLLECTIONS = {"sentinel-2-l2a", "S2L2A"}
RESAMPLERS = {"NEAREST": Resampling.nearest, "BILINEAR": Resampling.bilinear, "BICUBIC": Resampling.cubic}
DTYPES: dict[str, type[np.generic]] = {
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "FLOAT32": np.float32,
    "AUTO": np.uint8,
}
INT_RANGE = {"UINT8": (0, 255), "UINT16": (0, 65535), "AUTO": (0, 255)}


class ProcessError(ValueError):
    """A request the emulator refuses (answered 400 with the message)."""


@dataclass(frozen=True)
class Evalscript:
    """The parts of an evalscript the emulator uses."""

    bands: tuple[str, ...]
    units: tuple[str, ...]
    """``REFLECTANCE`` (default for spectral bands) or ``DN`` per input band."""
    n_out: int
    sample_type: str
    outputs: tuple[ast.expr, ...] | None
    """evaluatePixel's returned expressions, or None when the body is not a single return."""
    param: str


def _balanced(text: str, start: int) -> str:
    """``text[start:]`` up to the bracket that closes the one at ``start`` (strings respected)."""
    pairs = {"{": "}", "[": "]", "(": ")"}
    stack, quote = [], ""
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            quote = "" if ch == quote and text[i - 1] != "\\" else quote
        elif ch in "\"'`":
            quote = ch
        elif ch in pairs:
            stack.append(pairs[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
            if not stack:
                return text[start : i + 1]
    raise ProcessError("unbalanced brackets in the evalscript")


def _strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", "", re.sub(r"(?m)(^|[^:])//[^\n]*", r"\1", text), flags=re.S)


def _function(script: str, name: str) -> tuple[str, str]:
    """(first parameter name, body) of ``function name(...) { ... }``."""
    match = re.search(rf"function\s+{name}\s*\(([^)]*)\)\s*\{{", script)
    if match is None:
        raise ProcessError(f"the evalscript defines no function {name}()")
    body = _balanced(script, match.end() - 1)[1:-1]
    return (match.group(1).split(",")[0].strip() or "sample"), body


def js_object(text: str) -> Any:
    """A JavaScript object literal (unquoted keys, single quotes, trailing commas) as Python data."""
    text = re.sub(r"SampleType\.(\w+)", r'"\1"', _strip_comments(text))
    text = re.sub(r"'([^'\\]*)'", r'"\1"', text)
    text = re.sub(r"([{,]\s*)([A-Za-z_$][\w$]*)\s*:", r'\1"\2":', text)
    text = re.sub(r",\s*([}\]])", r"\1", text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProcessError(
            f"cannot read the object setup() returns ({exc}); the emulator needs a literal"
        ) from exc


def parse_evalscript(script: str) -> Evalscript:
    """Bands, units, output and (when simple) evaluatePixel's expressions of a VERSION=3 script."""
    _, setup_body = _function(script, "setup")
    at = re.search(r"return\s*\{", setup_body)
    if at is None:
        raise ProcessError("setup() must return an object literal")
    setup = js_object(_balanced(setup_body, at.end() - 1))
    inputs = setup.get("input")
    first = inputs[0] if isinstance(inputs, list) and inputs else inputs
    if isinstance(inputs, list) and all(isinstance(b, str) for b in inputs):
        first = {"bands": inputs}
    if not isinstance(first, Mapping) or not first.get("bands"):
        raise ProcessError("setup().input must list bands, e.g. [{bands: ['B04', 'dataMask']}]")
    bands = tuple(str(b) for b in first["bands"])
    unknown = [b for b in bands if b not in BANDS and b not in MASKS]
    if unknown:
        raise ProcessError(
            f"bands {unknown} are not served by the emulator (it has {list(BANDS)} and {list(MASKS)})"
        )
    units = first.get("units", "REFLECTANCE")
    units = [units] * len(bands) if isinstance(units, str) else list(units)
    output = setup.get("output", {})
    output = output[0] if isinstance(output, list) and output else output
    sample_type = str(output.get("sampleType", "AUTO")).upper()
    if sample_type not in DTYPES:
        raise ProcessError(f"sampleType {sample_type!r} is not one of {sorted(DTYPES)}")
    param, body = _function(script, "evaluatePixel")
    return Evalscript(
        bands, tuple(units), int(output.get("bands", 1)), sample_type, _returned(body, param, bands), param
    )


def _returned(body: str, param: str, bands: Sequence[str]) -> tuple[ast.expr, ...] | None:
    match = re.fullmatch(r"\s*return\s+(.+?);?\s*", _strip_comments(body), flags=re.S)
    if match is None:
        return None
    text = match.group(1).strip()
    inner = re.fullmatch(r"\{\s*\w+\s*:\s*(\[.*\])\s*\}", text, flags=re.S)
    try:
        tree = ast.parse(inner.group(1) if inner else text, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(tree, ast.List) or not all(_simple(e, param, bands) for e in tree.elts):
        return None
    return tuple(tree.elts)


def _simple(node: ast.AST, param: str, bands: Sequence[str]) -> bool:
    if isinstance(node, ast.BinOp):
        ok_op = isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div)
        return ok_op and _simple(node.left, param, bands) and _simple(node.right, param, bands)
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.USub | ast.UAdd) and _simple(node.operand, param, bands)
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int | float) and not isinstance(node.value, bool)
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == param
        and node.attr in bands
    )


def _evaluate(node: ast.AST, samples: Mapping[str, np.ndarray]) -> np.ndarray | float:
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, samples), _evaluate(node.right, samples)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.divide(left, right)
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, samples)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Constant):
        return float(node.value)  # type: ignore[arg-type]  # _simple() admitted numbers only
    assert isinstance(node, ast.Attribute)
    return samples[node.attr]


def samples_for(script: Evalscript, dn: np.ndarray) -> dict[str, np.ndarray]:
    """What evaluatePixel sees per input band, from the mosaic ``dn`` (``("band", "y", "x")`` uint16)."""
    valid = (dn != 0).any(axis=0)
    band = {b: dn[i].astype(np.float64) for i, b in enumerate(BANDS)}
    cloud = valid & (band["B02"] > CLOUD_DN)
    with np.errstate(divide="ignore", invalid="ignore"):
        water = (band["B03"] - band["B11"]) / (band["B03"] + band["B11"]) > 0
        veg = (band["B08"] - band["B04"]) / (band["B08"] + band["B04"]) > 0.4
    scl = np.where(cloud, 9, np.where(water, 6, np.where(veg, 4, 5)))
    masks = {
        "dataMask": valid.astype(np.float64),
        "SCL": np.where(valid, scl, 0).astype(np.float64),
        "CLM": np.where(valid, cloud, 255).astype(np.float64),
        "CLP": np.where(cloud, 255, 0).astype(np.float64),
    }
    out = {}
    for name, unit in zip(script.bands, script.units, strict=True):
        out[name] = masks[name] if name in masks else band[name] * (1.0 if unit.upper() == "DN" else SCALE)
    return out


def encode(values: list[np.ndarray], sample_type: str) -> np.ndarray:
    """Stack evaluatePixel's outputs as Sentinel Hub writes them for ``sampleType``."""
    stack = np.stack(values).astype(np.float64)
    if sample_type == "FLOAT32":
        return stack.astype(np.float32)
    if sample_type == "AUTO":
        stack = stack * 255.0
    low, high = INT_RANGE[sample_type]
    return np.clip(np.rint(np.nan_to_num(stack)), low, high).astype(DTYPES[sample_type])


def output_grid(body: Mapping[str, Any]) -> tuple[CRS, Any, int, int]:
    """(crs, transform, width, height) of the requested image."""
    bounds = body["input"]["bounds"]
    crs_url = str((bounds.get("properties") or {}).get("crs", "http://www.opengis.net/def/crs/OGC/1.3/CRS84"))
    crs = (
        CRS.from_epsg(4326)
        if crs_url.endswith("CRS84")
        else CRS.from_epsg(int(crs_url.rstrip("/").split("/")[-1]))
    )
    minx, miny, maxx, maxy = bounds["bbox"] if "bbox" in bounds else shape(bounds["geometry"]).bounds
    out = body.get("output") or {}
    if "width" in out:
        width, height = int(out["width"]), int(out["height"])
    elif "resx" in out:
        width = max(1, round((maxx - minx) / float(out["resx"])))
        height = max(1, round((maxy - miny) / float(out["resy"])))
    else:
        width = height = 256
    return crs, from_bounds(minx, miny, maxx, maxy, width, height), width, height


def select_scenes(
    published: Sequence[Scene], body: Mapping[str, Any], crs: CRS, bbox: Sequence[float]
) -> list[Scene]:
    """The published scenes the request's data filter and bounds select, in mosaicking order."""
    data = body["input"]["data"][0]
    if data.get("type") not in COLLECTIONS:
        raise ProcessError(
            f"input.data[0].type {data.get('type')!r}: the emulator serves sentinel-2-l2a only"
        )
    filt = data.get("dataFilter") or {}
    rng = filt.get("timeRange")
    interval = parse_interval(f"{rng['from']}/{rng['to']}") if rng else (None, None)
    max_cc = float(filt.get("maxCloudCoverage", 100))
    area = box(*transform_bounds(crs, "EPSG:4326", *bbox, densify_pts=21))
    chosen = [
        s
        for s in published
        if in_interval(s.datetime, interval) and s.cloud_cover <= max_cc and s.footprint.intersects(area)
    ]
    order = filt.get("mosaickingOrder", "mostRecent")
    if order == "leastCC":
        return sorted(chosen, key=lambda s: (s.cloud_cover, s.sample_id))
    return sorted(chosen, key=lambda s: (s.datetime, s.sample_id), reverse=order != "leastRecent")


def mosaic(
    scenes: Sequence[Scene], crs: CRS, transform: Any, width: int, height: int, how: Resampling
) -> np.ndarray:
    """The first valid pixel of ``scenes`` per output pixel, ``("band", "y", "x")`` uint16 DN."""
    out = np.zeros((len(BANDS), height, width), dtype=np.uint16)
    filled = np.zeros((height, width), dtype=bool)
    for scene in scenes:
        dst = np.zeros_like(out)
        # rasterio may warn NotGeoreferencedWarning now and then when threads warp at once; the
        # pixels are right all the same (checked with 16 concurrent threads against the files)
        reproject(
            np.array(scene.read()),
            dst,
            src_transform=scene.transform,
            src_crs=CRS.from_epsg(scene.epsg),
            src_nodata=0,
            dst_transform=transform,
            dst_crs=crs,
            dst_nodata=0,
            resampling=how,
        )
        new = (dst != 0).any(axis=0) & ~filled
        out[:, new] = dst[:, new]
        filled |= new
        if filled.all():
            break
    return out


def render(body: Mapping[str, Any], published: Sequence[Scene]) -> tuple[bytes, str, int]:
    """(GeoTIFF bytes, evaluation mode, scenes used) for a validated Process API body."""
    responses = (body.get("output") or {}).get("responses") or [{"format": {"type": "image/tiff"}}]
    if len(responses) != 1 or responses[0].get("format", {}).get("type") != "image/tiff":
        raise ProcessError("the emulator answers exactly one image/tiff response")
    script = parse_evalscript(body["evalscript"])
    crs, transform, width, height = output_grid(body)
    bbox = body["input"]["bounds"].get("bbox") or shape(body["input"]["bounds"]["geometry"]).bounds
    scenes = select_scenes(published, body, crs, bbox)
    processing = body["input"]["data"][0].get("processing") or {}
    dn = mosaic(scenes, crs, transform, width, height, RESAMPLERS[processing.get("upsampling", "NEAREST")])
    if "geometry" in body["input"]["bounds"]:
        outside = geometry_mask([body["input"]["bounds"]["geometry"]], (height, width), transform)
        dn[:, outside] = 0
    samples = samples_for(script, dn)
    if script.outputs is not None:
        values = [np.broadcast_to(_evaluate(e, samples), (height, width)) for e in script.outputs]
        mode = "expressions"
    else:
        values, mode = [samples[b] for b in script.bands], "identity"
    if len(values) != script.n_out:
        raise ProcessError(
            f"evaluatePixel gives {len(values)} values but setup() declares {script.n_out} output bands"
        )
    pixels = encode(values, script.sample_type)
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": len(values),
        "dtype": pixels.dtype.name,
        "crs": crs,
        "transform": transform,
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(pixels)
        return bytes(mem.read()), mode, len(scenes)
