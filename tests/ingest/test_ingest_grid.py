"""Grid and chunk edge cases (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import CRS

from pipeline.ingest.grid import GridSpec, chunk_edges

UTM = CRS.from_epsg(32721)


@given(
    length=st.integers(1, 5000),
    block=st.sampled_from([128, 256, 512, 1024]),
    mult=st.integers(1, 8),
    shift=st.integers(0, 20000),
)
def test_chunks_cover_the_axis_and_cut_only_on_block_edges(
    length: int, block: int, mult: int, shift: int
) -> None:
    edges = chunk_edges(length, chunk=block * mult, block=block, shift=shift)
    assert sum(edges) == length and all(e > 0 for e in edges)
    cuts = np.cumsum(edges)[:-1] + shift
    assert (cuts % block == 0).all()
    assert max(edges) <= block * mult


@settings(max_examples=200)
@given(
    x0=st.floats(100_000, 900_000),
    y0=st.floats(1_000_000, 9_000_000),
    w=st.floats(0.01, 50_000),
    h=st.floats(0.01, 50_000),
    res=st.sampled_from([10.0, 20.0, 60.0, 9.99479]),
    ax=st.floats(-1000, 1000),
)
def test_covering_grid_contains_the_bounds_on_anchored_pixels(
    x0: float, y0: float, w: float, h: float, res: float, ax: float
) -> None:
    g = GridSpec.covering((x0, y0, x0 + w, y0 + h), crs=UTM, resolution=(res, res), anchor=(ax, ax))
    left, bottom, right, top = g.bounds
    tol = 1e-6 * max(abs(x0), abs(y0))
    assert left <= x0 + tol and bottom <= y0 + tol and right >= x0 + w - tol and top >= y0 + h - tol
    # never more than one pixel of slack on a side
    assert x0 - left < res + tol and top - (y0 + h) < res + tol
    off = (left - ax) / res
    assert abs(off - round(off)) < 1e-6
    ys, xs = g.coords()
    assert len(xs) == g.width and len(ys) == g.height and xs[0] == left + res / 2
