"""Training chips from a training raster: the cube computed once, random chips weighted to where
models err.

Reading chips from a lazy cube recomputes the cube's graph for every chip (about 2.3 s per chip,
whatever its size). :func:`training_raster` computes the training area once instead, chunk by
chunk into a memory-mapped ``.npy`` beside the run (cost in proportion to pixels, reused on
resume), and every chip is then a slice of it.

The area is split into square *blocks* (:func:`~glacierxr.training.chips.chip_windows`: groups of
blocks drawn for validation, so neighbouring pixels never land on both sides). Validation reads
fixed windows (:class:`GridChips`); training draws new random windows every epoch
(:class:`RandomChips`), by default *balanced*: a window is drawn with a weight that grows with
the glacier edges and the *hard* pixels it holds. Hard pixels are those where the labels and a
plain snow index disagree: glacier whose NDSI is low (debris-covered ice) and background whose
NDSI is high (seasonal snow, water). Those are where the band ratio fails and a learned model
must do better; uniform windows spend most steps on easy rock and clean ice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from glacierxr.errors import InvalidArgumentError, MissingBandError
from glacierxr.indices import normalized_difference
from glacierxr.training.chips import chip_windows, rasterize_labels
from glacierxr.training.losses import IGNORE

__all__ = ["TrainingRaster", "training_raster", "mosaic", "split_blocks", "hard_pixels", "window_weights", "RandomChips",
           "GridChips", "SAMPLINGS"]

#: Ways :class:`RandomChips` draws windows.
SAMPLINGS = ("balanced", "uniform")
_GREEN, _SWIR = ("B03", "green"), ("B11", "swir16", "B6", "SR_B6")
_NDSI_ICE = 0.4  # the classic snow/ice NDSI threshold (Dozier 1989; Paul et al. 2015 use it as a cross-check)


@dataclass
class TrainingRaster:
    """The training area of a cube as arrays: raw band values and labels on one grid.

    Attributes
    ----------
    bands
        Band names, in the order of ``x``.
    x
        ``(band, y, x)`` float32 cube values (not normalised); NaN where a band has no data.
    y
        ``(y, x)`` uint8 labels: 0 background, 1 glacier, :data:`~glacierxr.training.losses.IGNORE`
        where any band is missing (such pixels count in no loss and no metric).
    """

    bands: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.y.shape)  # type: ignore[return-value]

    def statistics(self, windows: Sequence[tuple[int, int]] | None = None, size: int | None = None,
                   ) -> dict[str, tuple[float, float]]:
        """Per-band ``(mean, std)`` over the valid pixels (of ``windows`` of side ``size`` if given)."""
        sums = np.zeros((len(self.bands), 2))
        n = 0
        for r, c, h, w in (((r, c, size, size) for r, c in windows) if windows else [(0, 0, *self.shape)]):
            ok = self.y[r:r + h, c:c + w] != IGNORE
            n += int(ok.sum())
            for i in range(len(self.bands)):
                v = self.x[i, r:r + h, c:c + w][ok].astype(np.float64)
                sums[i] += v.sum(), (v * v).sum()
        if n == 0:
            raise InvalidArgumentError("the training area has no pixel where every band has data; check the "
                                       "search's dates and cloud cover, or the bands.")
        mean = sums[:, 0] / n
        std = np.sqrt(np.maximum(sums[:, 1] / n - mean ** 2, 0.0))
        return {b: (float(m), float(s) if s > 1e-6 else 1.0) for b, m, s in zip(self.bands, mean, std, strict=True)}

    def chip(self, r: int, c: int, size: int, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The normalised bands (NaN set to 0) and labels of the window at ``(r, c)``."""
        x = (np.asarray(self.x[:, r:r + size, c:c + size], np.float32) - mean) / std
        np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return x, np.asarray(self.y[r:r + size, c:c + size])


def _fingerprint(cube: xr.Dataset, bands: Sequence[str], labels: np.ndarray) -> str:
    grid = cube[bands[0]]
    key = {"bands": list(bands), "shape": list(labels.shape), "x": [float(grid.x[0]), float(grid.x[-1])],
           "y": [float(grid.y[0]), float(grid.y[-1])], "labels": hashlib.sha1(labels.tobytes()).hexdigest(),
           "cube": {b: str(getattr(cube[b].data, "name", "")) for b in bands}}
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()


def training_raster(cube: xr.Dataset, outlines: Any, bands: Sequence[str], *, cache: str | os.PathLike | None = None,
                    progress: bool = False) -> TrainingRaster:
    """Compute the bands of ``cube`` once and burn ``outlines`` onto its grid.

    Parameters
    ----------
    cube
        The (lazy) datacube.
    outlines
        Glacier polygons (GeoDataFrame or a path), any CRS.
    bands
        The bands to read, in the model's order.
    cache
        A folder: the bands go chunk by chunk into ``x.npy`` there (memory-mapped, so the area may
        exceed memory) and a rerun on the same cube, bands and labels reads them back instead of
        computing again. ``None``: computed into memory.
    progress
        One line on stderr when the bands are computed.

    Returns
    -------
    TrainingRaster
    """
    import dask.array as da

    bands = tuple(bands)
    missing = [b for b in bands if b not in cube.data_vars]
    if missing:
        raise MissingBandError(f"the cube lacks bands {missing}; it has {sorted(map(str, cube.data_vars))}")
    labels = rasterize_labels(outlines, cube[bands[0]]).values
    if not labels.any():
        raise InvalidArgumentError("no glacier outline falls on the cube's grid: check that the outlines cover the "
                                   "bbox (and their CRS).")
    stack = da.stack([da.asarray(cube[b].data).astype(np.float32) for b in bands])
    if cache is None:
        x = np.asarray(stack.compute())
    else:
        root = Path(cache)
        root.mkdir(parents=True, exist_ok=True)
        meta, key = root / "raster.json", _fingerprint(cube, bands, labels)
        if meta.exists() and json.loads(meta.read_text()).get("key") == key:
            x = np.load(root / "x.npy", mmap_mode="r")
        else:
            meta.unlink(missing_ok=True)
            if progress:
                import sys

                sys.stderr.write(f"training raster: computing {len(bands)} bands x {labels.shape[0]} x "
                                 f"{labels.shape[1]} px into {root}\n")
            x = np.lib.format.open_memmap(root / "x.npy", mode="w+", dtype=np.float32, shape=stack.shape)
            da.store(stack, x, lock=False)
            x.flush()
            meta.write_text(json.dumps({"key": key, "bands": list(bands), "shape": list(stack.shape)}))  # last
            x = np.load(root / "x.npy", mmap_mode="r")
    y = labels.astype(np.uint8)
    y[np.isnan(x).any(axis=0)] = IGNORE
    return TrainingRaster(bands, x, y)


def mosaic(rasters: Sequence[TrainingRaster], multiple: int = 256) -> TrainingRaster:
    """Several training rasters side by side as one, each padded to a multiple of ``multiple`` px.

    The padding is no data (NaN, :data:`~glacierxr.training.losses.IGNORE`), so with blocks that
    divide ``multiple`` no block holds pixels of two regions and the padding is never drawn.
    """
    if len({r.bands for r in rasters}) != 1:
        raise InvalidArgumentError("every training region must have the same bands.")
    up = lambda n: -(-n // multiple) * multiple  # noqa: E731
    h = max(up(r.shape[0]) for r in rasters)
    widths = [up(r.shape[1]) for r in rasters]
    x = np.full((len(rasters[0].bands), h, sum(widths)), np.nan, np.float32)
    y = np.full((h, sum(widths)), IGNORE, np.uint8)
    c = 0
    for r, w in zip(rasters, widths, strict=True):
        x[:, : r.shape[0], c:c + r.shape[1]] = r.x
        y[: r.shape[0], c:c + r.shape[1]] = r.y
        c += w
    return TrainingRaster(rasters[0].bands, x, y)


def split_blocks(shape: Sequence[int], block: int, *, val_fraction: float, seed: int, smallest: int = 32,
                 min_blocks: int = 1) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
    """Blocks for training and validation: side ``block`` px, halved (never below ``smallest``)
    while the area holds fewer than ``min_blocks`` of them or too few for the split.

    Returns ``(block, train_origins, val_origins)``; see :func:`~glacierxr.training.chips.chip_windows`.

    Raises
    ------
    InvalidArgumentError
        When even blocks of ``smallest`` px allow no split.
    """
    h, w = (int(v) for v in shape)
    while block // 2 >= smallest and (h // block) * (w // block) < min_blocks:
        block //= 2
    while True:
        try:
            train, val = chip_windows(shape, block, val_fraction=val_fraction, seed=seed)
            return block, train, val
        except InvalidArgumentError as exc:
            if block // 2 < smallest:
                raise InvalidArgumentError(
                    f"the area ({h} x {w} px) is too small for blocks of {smallest} px and a validation split "
                    f"({exc}); pass a smaller chip or val_fraction=0.") from exc
            block //= 2


def hard_pixels(raster: TrainingRaster) -> np.ndarray:
    """Where the labels and a plain snow index disagree: glacier with NDSI < 0.4, background above it.

    Uses the ``NDSI`` band, or computes it from a green and a SWIR band (``B03``/``green`` and
    ``B11``/``swir16``); without them no pixel is hard (all ``False``).
    """
    names = list(raster.bands)
    if "NDSI" in names:
        ndsi = np.asarray(raster.x[names.index("NDSI")])
    else:
        g = next((names.index(b) for b in _GREEN if b in names), None)
        s = next((names.index(b) for b in _SWIR if b in names), None)
        if g is None or s is None:
            return np.zeros(raster.shape, bool)
        ndsi = normalized_difference(xr.DataArray(raster.x[g]), xr.DataArray(raster.x[s])).values
    ice = ndsi >= _NDSI_ICE
    return ((raster.y == 1) & ~ice) | ((raster.y == 0) & ice)


def _edges(y: np.ndarray) -> np.ndarray:
    e = np.zeros(y.shape, bool)
    for a, b in ((np.s_[1:, :], np.s_[:-1, :]), (np.s_[:, 1:], np.s_[:, :-1])):
        d = (y[a] != y[b]) & (y[a] != IGNORE) & (y[b] != IGNORE)
        e[a] |= d
        e[b] |= d
    return e


def _window_sums(mask: np.ndarray, origins: np.ndarray, size: int) -> np.ndarray:
    s = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1))
    s[1:, 1:] = mask.cumsum(0).cumsum(1)
    r, c = origins[:, 0], origins[:, 1]
    return s[r + size, c + size] - s[r, c + size] - s[r + size, c] + s[r, c]


def window_weights(raster: TrainingRaster, origins: np.ndarray, size: int, *, edge: float = 1.0,
                   hard: float = 2.0, cap: float = 8.0) -> np.ndarray:
    """Draw weights of windows: ``1 + edge * e + hard * (g + b)``.

    ``e``, ``g`` and ``b`` are a window's counts of glacier-edge pixels, hard glacier pixels and
    hard background pixels (:func:`hard_pixels`), each divided by its mean over the windows and
    capped at ``cap``. Hard glacier (debris) and hard background (lakes, snow patches) have a term
    each, so that a rare kind (one lake in the region) is not drowned by a common one; the cap
    keeps a single lake from taking every draw. A term whose mean is 0 is left out; windows
    without a valid pixel weigh 0.
    """
    w = np.ones(len(origins))
    hard_px = hard_pixels(raster)
    for boost, mask in ((edge, _edges(raster.y)), (hard, hard_px & (raster.y == 1)), (hard, hard_px & (raster.y == 0))):
        counts = _window_sums(mask, origins, size)
        if boost and counts.mean() > 0:
            w += boost * np.minimum(counts / counts.mean(), cap)
    w[_window_sums(raster.y != IGNORE, origins, size) == 0] = 0.0
    return w


class _Chips(torch.utils.data.Dataset):
    def __init__(self, raster: TrainingRaster, chip: int, normalization: Mapping[str, Sequence[float]]):
        no_norm = [b for b in raster.bands if b not in normalization]
        if no_norm:
            raise InvalidArgumentError(f"normalization has no (mean, std) for bands {no_norm}")
        self.raster, self.chip, self.bands = raster, int(chip), raster.bands
        self._mean = np.array([normalization[b][0] for b in raster.bands], np.float32)[:, None, None]
        self._std = np.array([normalization[b][1] for b in raster.bands], np.float32)[:, None, None]
        self.windows: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self.windows)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Chip ``index`` as numpy arrays (normalised bands, labels)."""
        r, c = self.windows[index]
        return self.raster.chip(r, c, self.chip, self._mean, self._std)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.read(index)
        return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))


class GridChips(_Chips):
    """Fixed chips: the windows of side ``chip`` tiling each block of ``origins`` (validation)."""

    def __init__(self, raster: TrainingRaster, origins: Sequence[tuple[int, int]], block: int, chip: int,
                 normalization: Mapping[str, Sequence[float]]):
        super().__init__(raster, min(chip, block), normalization)
        n = block // self.chip
        self.windows = [(r + i * self.chip, c + j * self.chip) for r, c in origins for i in range(n) for j in range(n)]


class RandomChips(_Chips):
    """Random chips inside the blocks at ``origins``, new ones each epoch (:meth:`set_epoch`).

    Parameters
    ----------
    raster
        The :class:`TrainingRaster`.
    origins, block
        Origins and side (px) of the training blocks; a chip lies inside one block.
    chip
        Chip side (px), at most ``block``.
    normalization
        ``band -> (mean, std)`` (the model's).
    per_epoch
        Chips per epoch.
    sampling
        ``"balanced"`` (weights of :func:`window_weights`) or ``"uniform"``.
    seed
        The draw of epoch ``e`` depends only on ``(seed, e)``: a resumed run sees the same chips.
    """

    def __init__(self, raster: TrainingRaster, origins: Sequence[tuple[int, int]], block: int, chip: int,
                 normalization: Mapping[str, Sequence[float]], *, per_epoch: int, sampling: str = "balanced",
                 seed: int = 0):
        if chip > block:
            raise InvalidArgumentError(f"chip={chip} is larger than the blocks of {block} px; pass a smaller chip.")
        if sampling not in SAMPLINGS:
            raise InvalidArgumentError(f"sampling={sampling!r}; use one of {', '.join(SAMPLINGS)}.")
        if per_epoch < 1:
            raise InvalidArgumentError(f"per_epoch={per_epoch!r} must be a positive number of chips.")
        super().__init__(raster, chip, normalization)
        self.step = max(self.chip // 4, 1)
        offsets = np.arange(0, block - self.chip + 1, self.step)
        self.candidates = np.array([(r + i, c + j) for r, c in origins for i in offsets for j in offsets], np.int64)
        self._home = np.repeat(np.asarray(origins, np.int64).reshape(-1, 2), len(offsets) ** 2, axis=0)
        self._span = block - self.chip
        weights = (window_weights(raster, self.candidates, self.chip) if sampling == "balanced"
                   else window_weights(raster, self.candidates, self.chip, edge=0, hard=0))
        if weights.sum() <= 0:
            raise InvalidArgumentError("no training window holds a pixel where every band has data.")
        self.p = weights / weights.sum()
        self.per_epoch, self.seed, self.sampling = int(per_epoch), int(seed), sampling
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw the chips of ``epoch`` (called by :func:`glacierxr.training.train` before each epoch)."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        index = rng.choice(len(self.candidates), size=self.per_epoch, p=self.p)
        jitter = rng.integers(-(self.step // 2), self.step // 2 + 1, size=(len(index), 2))
        home = self._home[index]  # a jittered chip stays inside its block, never reaching a validation one
        picks = np.clip(self.candidates[index] + jitter, home, home + self._span)
        self.windows = [(int(r), int(c)) for r, c in picks]
