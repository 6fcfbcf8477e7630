"""Zarr v3 output: chunk-aligned region writes that resume where an interrupted write stopped.

A write creates the store's metadata and coordinates first (``to_zarr(compute=False)``), then
one task per chunk writes its region and records it as done in ``<store>.progress/done/`` (a
folder beside the store, so the Zarr hierarchy stays clean).
Calling the same write again on an interrupted store (same array fingerprint) writes only the
chunks without a record; a chunk whose write was cut off mid-way has no record and is simply
written again. A complete store, or one holding a different array, is never touched without
``mode="w"``. The CRS travels as the CF ``spatial_ref`` coordinate + ``grid_mapping``, so it
survives ``xr.open_zarr(store, decode_coords="all")``.

The fingerprint that decides whether an existing store is "this same array" covers the grid
(shape, coordinates), the chunks, the dtype and the attributes (for a prediction: model
token, bands, window, overlap, version); it does not read data. A prediction's ``window``
attribute is fingerprinted under its former name ``tile``, so a store interrupted before the
rename resumes.

Bookkeeping files live on the local filesystem next to the Zarr metadata; remote object stores
are not supported for resumable writes yet.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr

from glacierxr.errors import InvalidArgumentError, StoreExistsError

__all__ = ["to_zarr", "store_status"]

def _meta(path: Path) -> Path:
    """The bookkeeping folder of a store: ``<store>.progress`` beside it."""
    return path.with_name(path.name + ".progress")

#: uint8 encoding: probabilities 0..1 stored as 0..250 (steps of 0.004), NaN as 255.
UINT8_SCALE = 1 / 250
UINT8_FILL = 255


def _attrs_for_fingerprint(attrs: dict) -> dict:
    """``attrs`` with a prediction's ``window`` keyed ``tile``, as predictions were before the rename.

    Stores written by then keep their fingerprint, so an interrupted write still resumes.
    """
    if "window" in attrs and "tile" not in attrs and "model_token" in attrs:
        attrs = {("tile" if k == "window" else k): v for k, v in attrs.items()}
    return attrs


def _fingerprint(da_: xr.DataArray, name: str, dtype: str) -> str:

    h = hashlib.sha256()
    info = {
        "name": name, "dtype": dtype, "shape": list(da_.shape), "chunks": [list(c) for c in da_.chunks],
        "x": [float(da_.x[0]), float(da_.x[-1])], "y": [float(da_.y[0]), float(da_.y[-1])],
        "attrs": {k: str(v) for k, v in sorted(_attrs_for_fingerprint(da_.attrs).items())},
    }
    h.update(json.dumps(info, sort_keys=True).encode())
    return h.hexdigest()[:24]


def store_status(store: str | Path) -> dict:
    """What a store's bookkeeping says: ``fingerprint``, ``chunks_done``, ``complete``.

    Cheap enough to poll from another thread or process while a write runs (progress bars).
    """
    meta = _meta(Path(store))
    if not (meta / "fingerprint").exists():
        return {"fingerprint": None, "chunks_done": 0, "complete": False}
    done = meta / "done"
    return {
        "fingerprint": (meta / "fingerprint").read_text(),
        "chunks_done": len(list(done.iterdir())) if done.exists() else 0,
        "complete": (meta / "complete").exists(),
    }


def _write_block(block: np.ndarray, path: str, name: str, ys: slice, xs: slice, marker: str) -> int:
    region_ds = xr.Dataset({name: (("y", "x"), block)})
    region_ds.to_zarr(path, region={"y": ys, "x": xs}, mode="r+", zarr_format=3, consolidated=False)
    Path(marker).touch()
    return 1


def to_zarr(prob: xr.DataArray, store: str | Path, *, mode: str = "w-", dtype: str = "float32",
            batch: int | None = None) -> Path:
    """Write a (lazy) 2-D DataArray to a Zarr v3 store, chunk by chunk, resumably.

    Parameters
    ----------
    prob
        DataArray with dims ``(y, x)``, e.g. from ``cube.glacier.predict``. Its Dask chunks are
        the Zarr chunks; each chunk is computed and written by one task.
    store
        Local path of the Zarr store (a directory).
    mode
        ``"w-"`` (default): create the store; if it holds an interrupted write of this same
        array, finish it, writing only missing chunks; refuse if it is complete or holds
        something else. ``"w"``: overwrite whatever is there.
    dtype
        ``"float32"`` or ``"uint8"`` (probabilities scaled to 0..250, NaN stored as 255).
    batch
        Work units: submit at most this many chunks to the scheduler at once, row by row, so
        the graph handed to Dask stays small for very large regions (neighbouring chunks whose
        results a unit needs are computed again for it). ``None``: all chunks at once.

    Returns
    -------
    pathlib.Path
        The store path.

    Raises
    ------
    StoreExistsError
        When the store exists and ``mode="w-"`` cannot resume it.
    InvalidArgumentError
        On an unknown mode or dtype, a batch that is not a positive integer, or an array that is
        not 2-D (y, x); nothing is written then.
    """
    if mode not in ("w-", "w"):
        raise InvalidArgumentError(f"mode={mode!r} must be 'w-' (create or resume) or 'w' (overwrite).")
    if dtype not in ("float32", "uint8"):
        raise InvalidArgumentError(f"dtype={dtype!r} must be 'float32' or 'uint8'.")
    if prob.dims != ("y", "x"):
        raise InvalidArgumentError(f"to_zarr writes 2-D (y, x) arrays; this one has dims {prob.dims}.")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise InvalidArgumentError(f"batch={batch!r} must be a positive number of chunks, e.g. 1024, or None for all.")
    path = Path(store)
    name = prob.name or "glacier_probability"
    data = prob.data if isinstance(prob.data, da.Array) else da.from_array(np.asarray(prob.data), chunks=2048)
    prob = prob.copy(data=data)
    fingerprint = _fingerprint(prob, name, dtype)
    meta = _meta(path)
    status = store_status(path)
    if (meta / "creating").exists() and not (meta / "fingerprint").exists():
        # a write killed while it created the store's metadata (our marker says so): start again
        shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(meta, ignore_errors=True)
        status = store_status(path)
    if path.exists() and mode == "w":
        shutil.rmtree(path)
        shutil.rmtree(meta, ignore_errors=True)
    elif path.exists():
        if status["fingerprint"] != fingerprint:
            raise StoreExistsError(
                f"{path} already exists and holds a different array (or is not a glacierxr store); pass "
                "mode='w' to overwrite it, or choose another path."
            )
        if status["complete"]:
            raise StoreExistsError(f"{path} is already complete; pass mode='w' to write it again.")
    if not path.exists():
        shutil.rmtree(meta, ignore_errors=True)  # stale bookkeeping of a deleted store
    if not (meta / "fingerprint").exists():
        meta.mkdir(parents=True, exist_ok=True)
        (meta / "creating").write_text(fingerprint)  # until the fingerprint is written: see above
        ds = prob.to_dataset(name=name)
        keep = {"x", "y", "spatial_ref"}
        ds = ds.drop_vars([c for c in ds.coords if c not in keep])
        ds[name].encoding = {}
        if "spatial_ref" in ds.coords:
            ds[name].attrs["grid_mapping"] = "spatial_ref"  # CF link: survives decode_coords="all"
        enc = {"chunks": tuple(c[0] for c in data.chunks)}
        if dtype == "uint8":
            enc.update(dtype="uint8", scale_factor=np.float32(UINT8_SCALE), add_offset=np.float32(0), _FillValue=UINT8_FILL)
        else:
            enc.update(dtype="float32", _FillValue=np.float32(np.nan))
        with warnings.catch_warnings():
            # consolidated metadata is a zarr-python extension to v3; it lets xr.open_zarr open
            # the store without probing, and other readers simply ignore it
            warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
            ds.to_zarr(path, mode="w", compute=False, zarr_format=3, encoding={name: enc}, consolidated=True)
        (meta / "done").mkdir(parents=True, exist_ok=True)
        (meta / "fingerprint").write_text(fingerprint)
        (meta / "creating").unlink()
    done = meta / "done"
    blocks = data.to_delayed()
    tasks = []
    y0s, x0s = np.cumsum((0,) + data.chunks[0]), np.cumsum((0,) + data.chunks[1])
    for i in range(len(data.chunks[0])):
        for j in range(len(data.chunks[1])):
            marker = done / f"{i}-{j}"
            if marker.exists():
                continue
            ys, xs = slice(int(y0s[i]), int(y0s[i + 1])), slice(int(x0s[j]), int(x0s[j + 1]))
            tasks.append(dask.delayed(_write_block)(blocks[i, j], str(path), name, ys, xs, str(marker)))
    step = batch or max(len(tasks), 1)
    for start in range(0, len(tasks), step):
        dask.compute(*tasks[start : start + step])
    (meta / "complete").touch()
    return path
