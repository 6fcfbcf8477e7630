"""The cube's per-chunk kernel: stored values of every date -> one composite, in one pass.

stackstac hands over, for one spatial chunk, a block per (date, band) of stored values (NaN
where nothing was read). :func:`composite_chunk` turns them into physical values (each item's
own nodata, scale and offset), drops the pixels the quality band marks unusable, mosaics
same-day tiles (first valid value wins) and reduces over the days (median, mean, or the first
valid value for a DEM), all in NumPy on strips of rows that stay in the CPU cache. Written by
hand because doing the same with xarray operations (``where``, ``*``, ``+``, ``isin``, a
time rechunk and a sort on a transposed copy) touches every pixel about ten times.

The median sorts the few days of each pixel with a Batcher odd-even merge network of
``minimum``/``maximum`` over whole strips, missing values as +inf, and takes the middle of the
valid ones: exactly ``np.nanmedian`` (the mean of the two middle values for an even count).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["ChunkSpec", "composite_chunk", "nanmedian_first", "sort_network"]

_ROWS = 32  # rows per strip: 32 x 2048 float32 = 256 KiB per plane, a few planes stay in L2


@dataclass(frozen=True)
class ChunkSpec:
    """What :func:`composite_chunk` does with the blocks of one sensor.

    Parameters
    ----------
    scale, offset, nodata
        ``(time, band)`` arrays: physical = stored * scale + offset; stored == nodata is
        missing (NaN: none).
    days
        ``(time,)`` day number of each date, non-decreasing: dates of one day are mosaicked.
    data_bands
        Indices (along the band axis) of the bands to composite, in output order.
    mask_band
        Index of the quality band, or None.
    mask_values
        Quality classes marking a pixel unusable (a :class:`~glacierxr.sensors.MaskSpec` of
        ``kind="classes"``).
    mask_bits
        Bits marking a pixel unusable when set (``kind="bits"``).
    method
        ``"median"``, ``"mean"`` or ``"first"`` (first valid value in date order: a DEM).
    """

    scale: np.ndarray
    offset: np.ndarray
    nodata: np.ndarray
    days: tuple[int, ...]
    data_bands: tuple[int, ...]
    mask_band: int | None = None
    mask_values: tuple[float, ...] = ()
    mask_bits: tuple[int, ...] = ()
    method: str = "median"


def _unusable(quality: np.ndarray, spec: ChunkSpec) -> np.ndarray:
    """True where a quality plane marks a pixel unusable (missing quality included)."""
    bad = np.isnan(quality)
    if spec.mask_bits:
        q = np.where(bad, 0, quality).astype(np.uint32)
        for bit in spec.mask_bits:
            bad |= ((q >> np.uint32(bit)) & np.uint32(1)).astype(bool)
    for v in spec.mask_values:
        bad |= quality == v
    return bad


def composite_chunk(blocks: list, spec: ChunkSpec) -> np.ndarray:
    """Composite one spatial chunk of one sensor.

    Parameters
    ----------
    blocks
        ``blocks[t][b]``: the stored values of date ``t``, band ``b`` (float32, ``(..., y, x)``
        with any leading length-1 axes), NaN where nothing was read, as
        :func:`dask.array.blockwise` passes them with ``concatenate=False``.
    spec
        What to do (:class:`ChunkSpec`).

    Returns
    -------
    numpy.ndarray
        ``(len(spec.data_bands), y, x)`` float32.
    """
    planes = [[np.asarray(b).reshape(np.shape(b)[-2:]) for b in row] for row in blocks]
    h, w = planes[0][0].shape
    unusable = [None] * len(planes)
    if spec.mask_band is not None:
        for t, row in enumerate(planes):
            q = _physical(row[spec.mask_band], spec, t, spec.mask_band)
            unusable[t] = _unusable(q, spec)
    groups = _day_groups(spec.days)
    out = np.empty((len(spec.data_bands), h, w), np.float32)
    buf = np.empty((len(groups), min(_ROWS, h), w), np.float32)
    for k, b in enumerate(spec.data_bands):
        for r0 in range(0, h, _ROWS):
            r1 = min(r0 + _ROWS, h)
            days = buf[:, : r1 - r0]
            for d, members in enumerate(groups):
                _mosaic(days[d], [(planes[t][b][r0:r1], t, None if unusable[t] is None else unusable[t][r0:r1])
                                  for t in members], spec, b)
            _reduce(days, spec.method, out[k, r0:r1])
    return out


def _day_groups(days: tuple[int, ...]) -> list[list[int]]:
    groups: list[list[int]] = []
    for t, day in enumerate(days):
        if groups and days[groups[-1][0]] == day:
            groups[-1].append(t)
        else:
            groups.append([t])
    return groups


def _physical(stored: np.ndarray, spec: ChunkSpec, t: int, b: int, out: np.ndarray | None = None) -> np.ndarray:
    scale, offset, nodata = spec.scale[t, b], spec.offset[t, b], spec.nodata[t, b]
    out = np.multiply(stored, np.float32(scale), out=out, dtype=np.float32)
    if offset:
        out += np.float32(offset)
    if np.isfinite(nodata):
        np.copyto(out, np.float32(np.nan), where=stored == nodata)
    return out


def _mosaic(dst: np.ndarray, members: list, spec: ChunkSpec, b: int) -> None:
    """Physical values of the first member into ``dst``; later members fill what is still NaN."""
    tmp = None
    for i, (stored, t, bad) in enumerate(members):
        target = dst if i == 0 else (tmp := np.empty_like(dst) if tmp is None else tmp)
        _physical(stored, spec, t, b, out=target)
        if bad is not None:
            np.copyto(target, np.float32(np.nan), where=bad)
        if i:
            np.copyto(dst, target, where=np.isnan(dst))


def _reduce(days: np.ndarray, method: str, out: np.ndarray) -> None:
    if method == "first":
        out[...] = days[0]
        for d in days[1:]:
            np.copyto(out, d, where=np.isnan(out))
    elif method == "median":
        nanmedian_first(days, out=out)
    elif method == "mean":
        valid = ~np.isnan(days)
        n = valid.sum(axis=0)
        total = np.where(valid, days, 0).sum(axis=0, dtype=np.float64)
        out[...] = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    else:  # pragma: no cover - open_cube validates the method
        raise ValueError(method)


@lru_cache(maxsize=64)
def sort_network(n: int) -> tuple[tuple[int, int], ...]:
    """Comparators ``(i, j)``, ``i < j``, of Batcher's odd-even merge sort for ``n`` inputs.

    Built for the next power of two with the comparators touching an index >= ``n`` dropped:
    those would only compare with +inf padding and never swap.
    """
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return tuple(pairs)


def nanmedian_first(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Median over the first axis ignoring NaN (NaN where all are NaN), without warnings.

    Equals ``np.nanmedian(a, axis=0)`` for float input. Sorts the planes ``a[i]`` with a
    sorting network (:func:`sort_network`), NaN as +inf, then picks the middle valid values
    per pixel; for the handful of dates of a seasonal composite that is a few dozen passes of
    vectorised ``minimum``/``maximum``, where ``np.sort(axis=0)`` sorts pixel by pixel.
    """
    n_planes = a.shape[0]
    out = np.empty(a.shape[1:], a.dtype) if out is None else out
    if n_planes == 0:
        out.fill(np.nan)
        return out
    missing = np.isnan(a)
    s = a.copy()
    np.copyto(s, np.asarray(np.inf, a.dtype), where=missing)  # missing sorts last (ties with real +inf are equal)
    planes = list(s)
    tmp = np.empty_like(planes[0])
    for i, j in sort_network(n_planes):
        np.minimum(planes[i], planes[j], out=tmp)
        np.maximum(planes[i], planes[j], out=planes[j])
        planes[i], tmp = tmp, planes[i]
    n = None
    if not missing.any():  # nothing missing: the middle planes
        lo, hi = planes[(n_planes - 1) // 2], planes[n_planes // 2]
    else:  # the middle of each pixel's n valid values: sorted indices (n - 1) // 2 and n // 2
        n = n_planes - missing.sum(axis=0, dtype=np.int16)
        lo_i, hi_i = (n - 1) >> 1, n >> 1
        lo, hi = planes[0].copy(), planes[0].copy()
        for k in range(1, n_planes // 2 + 1):  # putmask: the fastest select on scattered masks
            if k <= (n_planes - 1) // 2:
                np.putmask(lo, lo_i == k, planes[k])
            np.putmask(hi, hi_i == k, planes[k])
    np.add(lo, hi, out=out)
    out *= np.asarray(0.5, out.dtype)
    if n is not None:
        np.putmask(out, n == 0, np.nan)
    return out
