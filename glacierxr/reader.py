"""A stackstac reader that reads grid-aligned assets directly instead of warping them.

stackstac warps every asset whose grid is not *identical* to the whole output grid through a
GDAL ``WarpedVRT``, even when the asset is already on the output grid's pixel lattice (same CRS,
an integer multiple of the pixel size, pixel edges on the lattice). That is the normal case
for Sentinel-2 and Sentinel-1 RTC tiles on a UTM grid, and the warp costs several times the read.

:class:`AlignedReader` reads such assets with a plain windowed read and, for coarser assets
(Sentinel-2 B11 and SCL at 20 m onto 10 m), repeats pixels: exactly what GDAL's nearest
resampling gives on aligned grids. Same-resolution aligned assets are returned as they are,
which is also what bilinear resampling gives there. Everything else (other CRS, e.g. the
geographic DEM; non-integer factors; bilinear upsampling) goes through stackstac's own reader
unchanged.
"""

from __future__ import annotations

import threading

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window
from stackstac.rio_reader import AutoParallelRioReader

__all__ = ["AlignedReader", "alignment"]

_TOL = 1e-6


def alignment(src_transform, src_crs_epsg: int | None, dst_transform, dst_epsg: int, resampling: Resampling):
    """``(k, row_off, col_off)`` when the source sits on the destination's pixel lattice, else ``None``.

    ``k`` is the source pixel size in destination pixels; the offsets are where the source's
    top-left corner falls, in destination pixels.
    """
    if src_crs_epsg != dst_epsg:
        return None
    a, b, c, d, e, f = src_transform[:6]
    A, _, C, _, E, F = dst_transform[:6]
    if b or d or a <= 0 or e >= 0 or A <= 0 or E >= 0:
        return None
    k = a / A
    if abs(k - round(k)) > _TOL or abs(-e / A - k) > _TOL or round(k) < 1:
        return None
    k = round(k)
    if k > 1 and resampling != Resampling.nearest:
        return None
    col_off, row_off = (c - C) / A, (F - f) / A
    if abs(col_off - round(col_off)) > _TOL or abs(row_off - round(row_off)) > _TOL:
        return None
    return k, round(row_off), round(col_off)


class AlignedReader(AutoParallelRioReader):
    """stackstac ``Reader`` with a direct path for assets already on the output pixel lattice."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._align_lock = threading.Lock()
        self._aligned: tuple | None | bool = False  # False: not checked yet

    def _check(self):
        with self._align_lock:
            if self._aligned is False:
                with self.gdal_env.open, rasterio.open(self.url) as src:
                    dst = self.spec.transform
                    info = alignment(src.transform, src.crs.to_epsg() if src.crs else None, dst,
                                     self.spec.epsg, self.resampling)
                    self._aligned = None if info is None or src.count != 1 else (*info, src.height, src.width)
            return self._aligned

    def read(self, window: Window, **kwargs) -> np.ndarray:
        info = self._check()
        if info is None:
            return super().read(window, **kwargs)
        k, row_off, col_off, src_h, src_w = info
        rows = np.arange(window.row_off, window.row_off + window.height) - row_off
        cols = np.arange(window.col_off, window.col_off + window.width) - col_off
        src_rows, src_cols = np.floor_divide(rows, k), np.floor_divide(cols, k)
        vr = (src_rows >= 0) & (src_rows < src_h)
        vc = (src_cols >= 0) & (src_cols < src_w)
        out = np.full((int(window.height), int(window.width)), self.fill_value, dtype=self.dtype)
        if not vr.any() or not vc.any():
            return out
        r0, r1 = int(src_rows[vr].min()), int(src_rows[vr].max()) + 1
        c0, c1 = int(src_cols[vc].min()), int(src_cols[vc].max()) + 1
        with self.gdal_env.open:
            src = rasterio.open(self.url)
        with src, self.gdal_env.read:
            block = src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0), masked=True, out_dtype=self.dtype)
        scale, offset = self.scale_offset
        if scale != 1:
            block *= scale
        if offset != 0:
            block += offset
        block = np.ma.filled(block, fill_value=self.fill_value)
        out[np.ix_(vr, vc)] = block[np.ix_(src_rows[vr] - r0, src_cols[vc] - c0)]
        return out

    def __setstate__(self, state) -> None:
        self.__init__(**state)

