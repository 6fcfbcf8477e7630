"""Training chips from a datacube and glacier outlines.

* :func:`rasterize_labels` burns outline polygons onto the cube's grid (0/1, pixel-centre rule).
* :func:`chip_windows` cuts the grid into non-overlapping square chips and splits them into
  train / validation by *blocks* of chips, so neighbouring chips (spatially autocorrelated)
  do not land on both sides of the split and no chip straddles it.
* :class:`ChipDataset` is a :class:`torch.utils.data.Dataset` reading one chip at a time from the
  (Dask-backed) cube, normalising it like :mod:`glacierxr.predict` does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from glacierxr.errors import CRSError, InvalidArgumentError, MissingBandError
from glacierxr.outlines_io import read_outlines

__all__ = ["rasterize_labels", "chip_windows", "ChipDataset"]


def rasterize_labels(outlines: Any, like: xr.DataArray) -> xr.DataArray:
    """Burn glacier outlines onto the grid of ``like`` as a 0/1 ``uint8`` label raster.

    Parameters
    ----------
    outlines
        Glacier polygons: a GeoDataFrame / GeoSeries in any CRS, or a path readable by
        :func:`geopandas.read_file`. They are reprojected to the CRS of ``like``.
    like
        A DataArray with ``y`` and ``x`` dimensions and a CRS (rioxarray), e.g. one band of the
        cube. Only its grid is used; its data are never computed.

    Returns
    -------
    xarray.DataArray
        ``labels`` (y, x), ``uint8``, 1 where a pixel centre lies inside a glacier, with the
        coordinates and CRS of ``like``.
    """
    import rioxarray  # noqa: F401  (registers .rio)
    from rasterio import features

    gdf = read_outlines(outlines)
    if not isinstance(like, xr.DataArray) or not {"y", "x"} <= set(like.dims):
        raise InvalidArgumentError("like must be a DataArray with 'y' and 'x' dimensions (e.g. cube['B02']).")
    crs = like.rio.crs
    if crs is None:
        raise CRSError("like has no CRS; attach one with like.rio.write_crs(...) before rasterising labels.")
    if gdf.crs is None:
        raise CRSError("outlines have no CRS; set one with outlines.set_crs(...).")
    gdf = gdf.to_crs(crs)
    grid = like.isel({d: 0 for d in like.dims if d not in ("y", "x")}, drop=True)
    shape = (grid.sizes["y"], grid.sizes["x"])
    transform = grid.rio.transform(recalc=True)
    geoms = [g for g in gdf.geometry if g is not None and not g.is_empty]
    if geoms:
        data = features.rasterize(((g, 1) for g in geoms), out_shape=shape, transform=transform,
                                  fill=0, all_touched=False, dtype="uint8")
    else:
        data = np.zeros(shape, dtype=np.uint8)
    coords = {"y": grid["y"].values, "x": grid["x"].values}
    out = xr.DataArray(data, dims=("y", "x"), coords=coords, name="labels")
    return out.rio.write_crs(crs)


def chip_windows(shape: Sequence[int], chip: int = 256, *, val_fraction: float = 0.3, block: int | None = None,
                 seed: int = 0) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Chip origins on a grid, split into train and validation by spatial blocks.

    The grid is cut into non-overlapping ``chip x chip`` windows (partial chips at the right and
    bottom edges are dropped). Chips are grouped into square blocks of ``block x block`` chips;
    whole blocks are drawn at random (seeded) for validation until the validation share of
    chips is as close as possible to ``val_fraction``. No chip belongs to both sets.

    Parameters
    ----------
    shape
        ``(height, width)`` of the grid in pixels.
    chip
        Chip side in pixels.
    val_fraction
        Share of chips for validation, in [0, 1). Default 0.3 (the paper's 70/30 split).
    block
        Block side in chips. Default: 2, or 1 when the grid holds fewer than 3 x 3 chips.
    seed
        Seed of the block draw.

    Returns
    -------
    (train, val)
        Two lists of ``(row, col)`` pixel origins of chips.
    """
    if len(shape) != 2:
        raise InvalidArgumentError(f"shape must be (height, width); got {tuple(shape)!r}")
    h, w = (int(s) for s in shape)
    if chip < 1 or int(chip) != chip:
        raise InvalidArgumentError(f"chip={chip!r} must be a positive integer number of pixels.")
    if not 0.0 <= val_fraction < 1.0:
        raise InvalidArgumentError(f"val_fraction={val_fraction!r} must be in [0, 1).")
    nr, nc = h // chip, w // chip
    if nr * nc == 0:
        raise InvalidArgumentError(f"a grid of {h} x {w} px holds no {chip} x {chip} chip; pass a smaller chip.")
    if block is None:
        block = 2 if min(nr, nc) >= 3 else 1
    if block < 1:
        raise InvalidArgumentError(f"block={block!r} must be a positive number of chips.")
    blocks: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i in range(nr):
        for j in range(nc):
            blocks.setdefault((i // block, j // block), []).append((i * chip, j * chip))
    keys = sorted(blocks)
    total = nr * nc
    if val_fraction > 0 and len(keys) < 2:
        raise InvalidArgumentError(
            f"only one block of chips ({nr} x {nc} chips, block={block}); pass a smaller block or chip, "
            "or val_fraction=0."
        )
    order = np.random.default_rng(seed).permutation(len(keys))
    target = val_fraction * total
    val_keys: list[tuple[int, int]] = []
    n_val = 0
    if val_fraction > 0:
        for k in order[:-1]:  # always leave at least one block for training
            size = len(blocks[keys[k]])
            if val_keys and abs(n_val + size - target) >= abs(n_val - target):
                break
            val_keys.append(keys[k])
            n_val += size
    chosen = set(val_keys)
    train = [o for k in keys if k not in chosen for o in blocks[k]]
    val = [o for k in keys if k in chosen for o in blocks[k]]
    return sorted(train), sorted(val)


class ChipDataset(torch.utils.data.Dataset):
    """Chips read lazily from a datacube, with labels.

    Parameters
    ----------
    cube
        A (lazy) Dataset with one variable per band on ``(y, x)``.
    labels
        0/1 labels on the same grid (see :func:`rasterize_labels`).
    windows
        ``(row, col)`` chip origins (see :func:`chip_windows`).
    bands
        Bands in the model's order (``model.bands``).
    normalization
        ``band -> (mean, std)`` (``model.normalization``).
    chip
        Chip side in pixels.
    transform
        Optional ``f(x, y) -> (x, y)`` on tensors (e.g. :class:`glacierxr.training.augment.RandomD4`).

    Each item is ``(x, y)``: ``x`` float32 ``(C, chip, chip)`` normalised with NaN set to 0,
    ``y`` int64 ``(chip, chip)``. Only the chip's window is computed.
    """

    def __init__(self, cube: xr.Dataset, labels: xr.DataArray, windows: Sequence[tuple[int, int]],
                 bands: Sequence[str], normalization: Mapping[str, Sequence[float]], *, chip: int = 256,
                 transform: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None):
        missing = [b for b in bands if b not in cube.data_vars]
        if missing:
            raise MissingBandError(f"the cube lacks bands {missing}; it has {sorted(map(str, cube.data_vars))}")
        no_norm = [b for b in bands if b not in normalization]
        if no_norm:
            raise InvalidArgumentError(f"normalization has no (mean, std) for bands {no_norm}")
        if labels.sizes.get("y") != cube.sizes.get("y") or labels.sizes.get("x") != cube.sizes.get("x"):
            raise InvalidArgumentError(
                f"labels ({dict(labels.sizes)}) are not on the cube's grid ({dict(cube.sizes)}); "
                "make them with rasterize_labels(outlines, like=cube[band])."
            )
        h, w = cube.sizes["y"], cube.sizes["x"]
        for r, c in windows:
            if r < 0 or c < 0 or r + chip > h or c + chip > w:
                raise InvalidArgumentError(f"chip window at ({r}, {c}) of {chip} px lies outside the {h} x {w} grid.")
        self.cube = cube
        self.labels = labels
        self.windows = [(int(r), int(c)) for r, c in windows]
        self.bands = tuple(bands)
        self.chip = int(chip)
        self.transform = transform
        self._mean = np.array([float(normalization[b][0]) for b in self.bands], dtype=np.float32)[:, None, None]
        self._std = np.array([float(normalization[b][1]) for b in self.bands], dtype=np.float32)[:, None, None]

    def __len__(self) -> int:
        return len(self.windows)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The chip ``index`` as numpy arrays (normalised bands, labels)."""
        r, c = self.windows[index]
        sel = {"y": slice(r, r + self.chip), "x": slice(c, c + self.chip)}
        window = self.cube[list(self.bands)].isel(sel)
        x = np.stack([np.asarray(window[b].values, dtype=np.float32) for b in self.bands])
        x = (x - self._mean) / self._std
        np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        y = np.asarray(self.labels.isel(sel).values).astype(np.int64)
        return x, y

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.read(index)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        if self.transform is not None:
            xt, yt = self.transform(xt, yt)
        return xt, yt
