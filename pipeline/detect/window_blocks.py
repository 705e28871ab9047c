"""Block algebra of the window features: per-block additive statistics (sums, fixed-bin
histograms, pixel-pair and 2 x 2 counts) aggregated over the k x k blocks of each window,
so a statistic is computed once per block whatever the number of windows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


# ==================================================================== block algebra ===
class WindowBlocks:
    """Per-block additive statistics and their k x k window aggregation."""

    def __init__(self, shape: tuple[int, int], block: int, k: int) -> None:
        self.h, self.w = shape
        self.s = block
        self.k = k
        self.nby = -(-self.h // block)
        self.nbx = -(-self.w // block)
        self.hp, self.wp = self.nby * block, self.nbx * block
        self.ny = max(self.nby - k + 1, 0)
        self.nx = max(self.nbx - k + 1, 0)
        # block id of each (padded) pixel
        by = np.arange(self.hp) // block
        bx = np.arange(self.wp) // block
        self.block_id = (by[:, None] * self.nbx + bx[None, :]).astype(np.int32)

    def pad(self, a: np.ndarray) -> np.ndarray:
        ph, pw = self.hp - a.shape[-2], self.wp - a.shape[-1]
        if ph == 0 and pw == 0:
            return a
        width = [(0, 0)] * (a.ndim - 2) + [(0, ph), (0, pw)]
        return np.pad(a, width)

    def block_sum(self, maps: np.ndarray) -> np.ndarray:
        """(J, y, x) -> (J, nby, nbx) float64 sums."""
        m = self.pad(maps)
        j = m.shape[0]
        return m.reshape(j, self.nby, self.s, self.nbx, self.s).sum(axis=(2, 4), dtype=np.float64)

    def window_sum(self, blocks: np.ndarray) -> np.ndarray:
        """(J, nby, nbx) -> (J, ny, nx) sums over k x k blocks."""
        k, ny, nx = self.k, self.ny, self.nx
        out = np.zeros((*blocks.shape[:-2], ny, nx), dtype=np.float64)
        for dy in range(k):
            for dx in range(k):
                out += blocks[..., dy : dy + ny, dx : dx + nx]
        return out

    def pair_window_sum(self, maps: np.ndarray, *, drop_col: bool, drop_row: bool) -> np.ndarray:
        """Window sums of anchor-based pixel-pair maps, exact at the window boundary.

        ``maps`` (J, y, x): the value at (y, x) describes the pixel with its right
        (``drop_col``), lower (``drop_row``) or lower-right 2 x 2 (both) neighbours; the
        caller has zeroed anchors whose partner is outside the image. Anchors on the
        window's last column / row (partner outside the window) are excluded.
        """
        m = self.pad(maps)
        j, s = m.shape[0], self.s
        r = m.reshape(j, self.nby, s, self.nbx, s)
        k, ny, nx = self.k, self.ny, self.nx
        out = self.window_sum(r.sum(axis=(2, 4), dtype=np.float64))
        if drop_col:
            lastcol = r[:, :, :, :, s - 1].sum(axis=2, dtype=np.float64)
            for d in range(k):
                out -= lastcol[:, d : d + ny, k - 1 : k - 1 + nx]
        if drop_row:
            lastrow = r[:, :, s - 1, :, :].sum(axis=3, dtype=np.float64)
            for d in range(k):
                out -= lastrow[:, k - 1 : k - 1 + ny, d : d + nx]
        if drop_col and drop_row:
            corner = r[:, :, s - 1, :, s - 1].astype(np.float64)
            out += corner[:, k - 1 : k - 1 + ny, k - 1 : k - 1 + nx]
        return out

    def window_hist(self, x: np.ndarray, valid: np.ndarray, lo: float, hi: float, nb: int) -> np.ndarray:
        """Fixed-bin histogram per window: (ny, nx, nb) counts of valid pixels."""
        xp = self.pad(x)
        vp = self.pad(valid)
        b = ((xp - lo) * (nb / (hi - lo))).astype(np.int32)
        np.clip(b, 0, nb - 1, out=b)
        sel = vp.ravel()
        idx = self.block_id.ravel()[sel] * nb + b.ravel()[sel]
        h = np.bincount(idx, minlength=self.nby * self.nbx * nb).reshape(self.nby, self.nbx, nb)
        h = np.moveaxis(h, -1, 0).astype(np.float64)
        return np.moveaxis(self.window_sum(h), 0, -1)


def hist_quantiles(h: np.ndarray, qs: Sequence[int], lo: float, hi: float) -> np.ndarray:
    """Quantiles (percent) from (..., nb) histograms, linear inside a bin -> (..., len(qs))."""
    nb = h.shape[-1]
    width = (hi - lo) / nb
    c = np.cumsum(h, axis=-1)
    tot = c[..., -1:]
    out = np.empty((*h.shape[:-1], len(qs)), dtype=np.float64)
    for i, q in enumerate(qs):
        target = tot * (q / 100.0)
        j = np.minimum((c < target).sum(axis=-1, keepdims=True), nb - 1)
        c_prev = np.where(j > 0, np.take_along_axis(c, np.maximum(j - 1, 0), -1), 0.0)
        cnt = np.take_along_axis(h, j, -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.clip((target - c_prev) / cnt, 0.0, 1.0)
        frac = np.where(cnt > 0, frac, 0.5)
        out[..., i] = (lo + (j + frac) * width)[..., 0]
    return out


def pair_stats(
    blk: WindowBlocks,
    valid: np.ndarray,
    maps: dict[str, np.ndarray],
    bools: dict[str, np.ndarray],
    tag: str,
) -> dict[str, np.ndarray]:
    """Window sums of pixel-pair statistics (4-neighbour pairs inside the window).

    Returns ``npair`` (valid pairs), ``grad_<map>`` (sum of |difference| over valid pairs),
    and for each boolean class ``edges_`` (fg-fg pairs), ``quads_`` (all-fg 2 x 2 squares)
    and ``perim_`` (fg / valid-bg pairs), each suffixed ``_<tag>``.
    """
    h, w = valid.shape
    vh = np.zeros((h, w), bool)
    vv = np.zeros((h, w), bool)
    vh[:, :-1] = valid[:, :-1] & valid[:, 1:]
    vv[:-1, :] = valid[:-1, :] & valid[1:, :]
    hn: list[str] = ["npair"]
    hm: list[np.ndarray] = [vh.astype(np.float32)]
    vm: list[np.ndarray] = [vv.astype(np.float32)]
    qn: list[str] = []
    qm: list[np.ndarray] = []
    for name, x in maps.items():  # mean absolute gradient
        gh = np.zeros((h, w), np.float32)
        gv = np.zeros((h, w), np.float32)
        gh[:, :-1] = np.abs(x[:, 1:] - x[:, :-1])
        gv[:-1, :] = np.abs(x[1:, :] - x[:-1, :])
        hn.append(f"grad_{name}")
        hm.append(gh * vh)
        vm.append(gv * vv)
    for name, f in bools.items():
        f = f & valid
        eh = np.zeros((h, w), bool)
        ev = np.zeros((h, w), bool)
        eh[:, :-1] = f[:, :-1] & f[:, 1:]
        ev[:-1, :] = f[:-1, :] & f[1:, :]
        q = np.zeros((h, w), bool)
        q[:-1, :-1] = eh[:-1, :-1] & eh[1:, :-1]
        bh = np.zeros((h, w), bool)
        bv = np.zeros((h, w), bool)
        bh[:, :-1] = (f[:, :-1] ^ f[:, 1:]) & vh[:, :-1]
        bv[:-1, :] = (f[:-1, :] ^ f[1:, :]) & vv[:-1, :]
        hn += [f"edges_{name}", f"perim_{name}"]
        hm += [eh.astype(np.float32), bh.astype(np.float32)]
        vm += [ev.astype(np.float32), bv.astype(np.float32)]
        qn.append(f"quads_{name}")
        qm.append(q.astype(np.float32))
    sh = blk.pair_window_sum(np.stack(hm), drop_col=True, drop_row=False)
    sv = blk.pair_window_sum(np.stack(vm), drop_col=False, drop_row=True)
    out = {f"{a}_{tag}": sh[i] + sv[i] for i, a in enumerate(hn)}
    if qm:
        sq = blk.pair_window_sum(np.stack(qm), drop_col=True, drop_row=True)
        out.update({f"{a}_{tag}": sq[i] for i, a in enumerate(qn)})
    return out
