"""Training data from a cube and outlines in one call, with an optional chip cache in Zarr.

Reading chips from a lazy cube recomputes the cube's graph for every chip in every epoch: fine
for a persisted cube, slow for one read from COGs. :func:`cache_chips` computes each chip once
and stores it in a Zarr group (one Zarr chunk per chip); :class:`CachedChips` then serves
epochs from disk. A cache remembers what it was made from (bands, normalisation, chip size,
windows) and is reused only for the same request, so a stale cache is never read silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from glacierxr.errors import InvalidArgumentError
from glacierxr.training.chips import ChipDataset, chip_windows, rasterize_labels

__all__ = ["CachedChips", "cache_chips", "training_data"]

Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _fingerprint(ds: ChipDataset) -> dict[str, Any]:
    return {
        "bands": list(ds.bands),
        "mean": [float(v) for v in ds._mean.ravel()],
        "std": [float(v) for v in ds._std.ravel()],
        "chip": ds.chip,
        "windows": [list(w) for w in ds.windows],
    }


def cache_chips(dataset: ChipDataset, path: str | os.PathLike, *, progress: bool = False) -> CachedChips:
    """Compute every chip of ``dataset`` once and store it in a Zarr group at ``path``.

    Parameters
    ----------
    dataset
        A :class:`~glacierxr.training.chips.ChipDataset` (its ``transform`` is not applied:
        augmentation happens when training reads the cache).
    path
        A folder for the Zarr group. When it already holds a cache of the same bands,
        normalisation, chip size and windows, nothing is computed; when it holds another
        cache, :class:`~glacierxr.errors.InvalidArgumentError` is raised.
    progress
        Print one line per 10 % of chips to stderr.

    Returns
    -------
    CachedChips
        The cache as a dataset.
    """
    import sys

    import zarr

    path = Path(path)
    want = _fingerprint(dataset)
    if (path / "zarr.json").exists():
        group = zarr.open_group(path, mode="r")
        have = json.loads(group.attrs.get("glacierxr_chips", "null"))
        if have == want and group.attrs.get("complete"):
            return CachedChips(path)
        if have is not None and have != want:
            diff = sorted(k for k in want if have.get(k) != want[k])
            raise InvalidArgumentError(
                f"the chip cache at {path} was made for other chips (different {', '.join(diff)}); "
                "delete it or pass another cache path."
            )
    n, c, s = len(dataset), len(dataset.bands), dataset.chip
    group = zarr.open_group(path, mode="w")
    group.attrs["glacierxr_chips"] = json.dumps(want)
    x = group.create_array("x", shape=(n, c, s, s), chunks=(1, c, s, s), dtype="float32")
    y = group.create_array("y", shape=(n, s, s), chunks=(1, s, s), dtype="uint8")
    step = max(n // 10, 1)
    for i in range(n):
        xi, yi = dataset.read(i)
        x[i] = xi
        y[i] = yi.astype(np.uint8)
        if progress and (i + 1) % step == 0:
            sys.stderr.write(f"chip cache {path.name}: {i + 1}/{n}\n")
    group.attrs["complete"] = True  # written last: an interrupted cache is rebuilt, never read
    return CachedChips(path)


class CachedChips(torch.utils.data.Dataset):
    """Chips stored by :func:`cache_chips`, read one Zarr chunk per item.

    Parameters
    ----------
    path
        The cache folder.
    transform
        Optional ``f(x, y) -> (x, y)`` on tensors (e.g. augmentation).
    """

    def __init__(self, path: str | os.PathLike, *, transform: Transform | None = None):
        import zarr

        self.path = Path(path)
        group = zarr.open_group(self.path, mode="r")
        if not group.attrs.get("complete"):
            raise InvalidArgumentError(f"{self.path} is not a complete chip cache; rebuild it with cache_chips().")
        meta = json.loads(group.attrs["glacierxr_chips"])
        self.bands: tuple[str, ...] = tuple(meta["bands"])
        self.chip: int = int(meta["chip"])
        self.windows = [tuple(w) for w in meta["windows"]]
        self._x, self._y = group["x"], group["y"]
        self.transform = transform

    def __len__(self) -> int:
        return int(self._x.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.asarray(self._x[index]))
        y = torch.from_numpy(np.asarray(self._y[index]).astype(np.int64))
        if self.transform is not None:
            x, y = self.transform(x, y)
        return x, y


def training_data(
    cube: xr.Dataset,
    outlines: Any,
    bands: Sequence[str],
    normalization: Mapping[str, Sequence[float]],
    *,
    chip: int = 256,
    val_fraction: float = 0.3,
    block: int | None = None,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    progress: bool = False,
) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    """Training and validation chips from a cube and glacier outlines.

    Labels are the outlines burnt onto the cube's grid (:func:`rasterize_labels`); chips are
    split by spatial blocks (:func:`chip_windows`, 70/30 by default as in Peng et al. 2023).

    Parameters
    ----------
    cube
        The (lazy) datacube, e.g. :func:`glacierxr.open_cube`.
    outlines
        Glacier polygons (GeoDataFrame or a path), any CRS.
    bands, normalization
        The model's bands and ``band -> (mean, std)``: ``model.bands``, ``model.normalization``.
    chip, val_fraction, block, seed
        See :func:`chip_windows`.
    cache
        Optional folder: chips are computed once into ``<cache>/train`` and ``<cache>/val``
        (Zarr) and read from there (see :func:`cache_chips`).
    progress
        Report cache building on stderr.

    Returns
    -------
    (train, val)
        Datasets of ``(x (C, chip, chip) float32, y (chip, chip) int64)``.
    """
    if not bands or not cube.data_vars:
        raise InvalidArgumentError("training needs at least one band, and a cube holding it.")
    # labels need only the grid; ChipDataset reports bands the cube lacks (MissingBandError)
    labels = rasterize_labels(outlines, cube[next(iter(cube.data_vars))])
    if not labels.values.any():
        raise InvalidArgumentError(
            "no glacier outline falls on the cube's grid: check that the outlines cover the bbox "
            "(and their CRS)."
        )
    train_w, val_w = chip_windows(labels.shape, chip, val_fraction=val_fraction, block=block, seed=seed)
    make = lambda w: ChipDataset(cube, labels, w, bands, normalization, chip=chip)  # noqa: E731
    train_ds, val_ds = make(train_w), make(val_w)
    if cache is None:
        return train_ds, val_ds
    root = Path(cache)
    cached = lambda ds, name: cache_chips(ds, root / name, progress=progress) if len(ds) else ds  # noqa: E731
    return cached(train_ds, "train"), cached(val_ds, "val")
