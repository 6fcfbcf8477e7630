"""Accuracy of a glacier prediction against reference outlines: pixel and object metrics, lazily.

``evaluate(prob, reference)`` scores a ``glacier_probability`` raster (or a 0/1 mask) against
reference glacier outlines (a GeoDataFrame in any CRS) or a 0/1 reference raster on the same
grid. Everything is one Dask graph computed in one pass; memory holds a few chunks, never the
whole grid:

1. **Reference raster.** Outlines are reprojected to the prediction's CRS and burnt chunk by
   chunk (``rasterio.features.rasterize``, pixel-centre rule, ``all_touched=False``) with each
   chunk's own transform; a shapely ``STRtree`` hands each chunk only the outlines that touch
   it. The burnt value is the glacier's row number (1-based), so glaciers stay identifiable.
2. **Pixel metrics.** Each chunk counts the codes ``2 * reference + prediction`` (plus codes
   for excluded and invalid pixels); the sum over chunks (a Dask tree reduction) is the 2 x 2
   confusion matrix.
3. **Object metrics.** One task per chunk with a halo of ``max_distance_m`` + 1 pixel
   (``dask.array.overlap``): boundary pixels of both masks, ``scipy.ndimage.distance_transform_edt``
   with nearest-pixel indices, and exact histograms of the distance of every boundary pixel of
   one mask to the nearest boundary pixel of the other (keyed by the integer pixel offset, so no
   binning error), plus per-glacier pixel counts. Distances up to ``max_distance_m`` are exact
   whatever the chunking (any pixel that near lies in the halo); longer ones are capped at
   ``max_distance_m`` (their share is reported). The same tasks also do the pixel counts, so
   the prediction is read once.

Memory: a task holds its chunk plus halo (about 17 bytes per pixel of that window, the EDT's
int32 indices being 8 of them) and O(number of reference glaciers) counters; the scheduler
keeps about one row of chunks (prediction and reference codes) for the halos. Never the grid.

Definitions (Peng et al. 2023, Eqs. 11-13; TP, FP, FN, TN counted per pixel, N = TP+FP+FN+TN,
computed for each class c in {background, glacier} with that class as "positive"):

* ``OA = (TP + TN) / N``
* ``precision_c = TP / (TP + FP)``, ``recall_c = TP / (TP + FN)``
* ``F1_c = 2 P R / (P + R)``, evaluated as ``2 TP / (2 TP + FP + FN)`` (identical when P and R
  are defined, and 0 rather than undefined when the class is absent from the prediction)
* ``IoU_c = TP / (TP + FP + FN)``
* ``mIoU`` and ``mean F1``: the mean over the two classes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from affine import Affine
from pyproj import CRS
from scipy import ndimage

from glacierxr.errors import CRSError, InputShapeError, InvalidArgumentError, NoOverlapError
from glacierxr.geo import bounds_of
from glacierxr.outlines_io import ID_COLUMNS, id_column_of, read_outlines

__all__ = ["evaluate", "evaluate_lazy", "pixel_metrics", "LazyEvaluation", "DEFAULT_MAX_DISTANCE_PX", "ID_COLUMNS"]

#: Default cap (and halo) of boundary distances, in pixels: 640 m at 10 m.
DEFAULT_MAX_DISTANCE_PX = 64
CLASSES = ("background", "glacier")

# prediction codes per pixel
_BG, _GLACIER, _MISSING, _BAD = 0, 1, 2, 3
# bins of the pixel count vector: 0..3 = 2 * reference + prediction, then these
_N_EXCLUDED, _N_BAD_PRED, _N_BAD_REF = 4, 5, 6
_N_COUNT_BINS = 7
_FOUR = ndimage.generate_binary_structure(2, 1)
_RASTERIZE_LOCK = threading.Lock()
#: Rows of a window handled at once where per-pixel index arrays are built.
_STRIP_ROWS = 128


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class _Grid:
    """The prediction grid: shape, transform, chunks, CRS and pixel size in metres."""

    shape: tuple[int, int]
    transform: Affine
    chunks: tuple[tuple[int, ...], tuple[int, ...]]
    crs: CRS | None
    """The prediction's CRS (``None`` when it has none)."""

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` of the outer pixel edges."""
        return bounds_of(self.transform, self.shape)

    def pixel_size_m(self) -> tuple[float, float]:
        """``(row height, column width)`` in metres; needs a projected CRS."""
        if self.crs is None:
            raise CRSError(
                "The prediction has no CRS, so distances and areas cannot be given in metres; attach "
                "one with prediction.rio.write_crs('EPSG:xxxx') or pass objects=False."
            )
        if self.crs.is_geographic:
            raise CRSError(
                f"The prediction is on a geographic grid ({self.crs.to_string()}); object metrics are in "
                "metres and km². Reproject it to a projected CRS (e.g. its UTM zone with "
                "prediction.rio.reproject(prediction.rio.estimate_utm_crs())) or pass objects=False."
            )
        factor = _metres_per_unit(self.crs)
        return abs(self.transform.e) * factor, abs(self.transform.a) * factor


def _metres_per_unit(crs: CRS) -> float:
    """Length of one CRS unit in metres (1 for metre-based CRSs)."""
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return float(factor) if factor else 1.0


def _pyproj(crs: Any) -> CRS | None:
    """A pyproj CRS from a rioxarray/rasterio CRS (``None`` stays ``None``)."""
    return None if crs is None else CRS.from_user_input(crs)


def _as_dask(data: Any) -> da.Array:
    """A Dask array of ``data`` (NumPy data becomes Dask with automatic chunks)."""
    return data if isinstance(data, da.Array) else da.asarray(np.asarray(data))


def _check_prediction(prediction: Any) -> xr.DataArray:
    """The prediction as a ``(y, x)`` DataArray (size-1 dims such as ``band`` squeezed)."""
    if not isinstance(prediction, xr.DataArray):
        raise InvalidArgumentError(
            f"prediction must be an xarray.DataArray (e.g. cube.glacier.predict(...)), not {type(prediction).__name__}."
        )
    extra = [d for d in prediction.dims if d not in ("y", "x")]
    if any(prediction.sizes[d] != 1 for d in extra) or set(prediction.dims) - set(extra) != {"y", "x"}:
        raise InputShapeError(
            f"prediction must be a 2-D (y, x) raster; it has dims {dict(prediction.sizes)}. Select one "
            "band/time (e.g. prediction.isel(band=0)) or rename its spatial dims to 'y' and 'x'."
        )
    prediction = prediction.squeeze(extra, drop=True).transpose("y", "x")
    if prediction.dtype.kind not in "biuf":
        raise InvalidArgumentError(
            f"prediction has dtype {prediction.dtype}; pass probabilities (float in [0, 1]) or a 0/1 mask."
        )
    if "x" not in prediction.coords or "y" not in prediction.coords:
        raise InvalidArgumentError(
            "prediction has no x/y coordinates, so its grid is unknown; pass a DataArray with x and y "
            "pixel-centre coordinates (as cube.glacier.predict returns)."
        )
    return prediction


def _grid_of(prediction: xr.DataArray, data: da.Array) -> _Grid:
    """The grid (transform from the pixel-centre coordinates, CRS from rioxarray)."""
    import rioxarray  # noqa: F401  (registers .rio)

    x, y = np.asarray(prediction.x, float), np.asarray(prediction.y, float)
    for name, c in (("x", x), ("y", y)):
        steps = np.diff(c)
        if len(c) > 1 and (not np.all(np.isfinite(c)) or np.ptp(steps) > 1e-6 * abs(steps[0]) or steps[0] == 0):
            raise InvalidArgumentError(
                f"prediction's {name} coordinates are not evenly spaced; evaluate needs a regular grid "
                "(resample it with rioxarray's rio.reproject first)."
            )
    transform = prediction.rio.transform(recalc=len(x) > 1 and len(y) > 1)
    centre = (transform.c + 0.5 * (transform.a + transform.b), transform.f + 0.5 * (transform.d + transform.e))
    tol = 1e-6 * max(abs(transform.a), abs(transform.e), 1e-12)
    if abs(centre[0] - x[0]) > tol or abs(centre[1] - y[0]) > tol or transform.b or transform.d:
        raise InvalidArgumentError(
            "Cannot tell the prediction's pixel size from a single row or column of coordinates; write "
            "its transform first (prediction.rio.write_transform(transform)) or pass at least 2 x 2 pixels."
        )
    return _Grid(shape=data.shape, transform=transform, chunks=data.chunks, crs=_pyproj(prediction.rio.crs))


def _check_options(threshold: float, objects: bool, max_distance_m: float | None) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise InvalidArgumentError(
            f"threshold={threshold!r} must be a number in [0, 1]; pixels with probability >= threshold are glacier."
        )
    if not isinstance(objects, bool):
        raise InvalidArgumentError(f"objects={objects!r} must be True or False.")
    if max_distance_m is not None and (
        isinstance(max_distance_m, bool) or not isinstance(max_distance_m, int | float)
        or not math.isfinite(max_distance_m) or max_distance_m <= 0
    ):
        raise InvalidArgumentError(
            f"max_distance_m={max_distance_m!r} must be a positive number of metres (or None for "
            f"{DEFAULT_MAX_DISTANCE_PX} pixels)."
        )


# ----------------------------------------------------------------------------- reference raster


@dataclass(frozen=True)
class _Reference:
    """The reference on the prediction grid, lazily: one array, read by :func:`_split_reference`."""

    data: da.Array
    """For outlines: glacier labels (0 outside glaciers, else the 1-based glacier number; uint8,
    uint16 or int32 by count). For a raster: codes (uint8: 0 background, 1 glacier, 2 missing,
    3 invalid value)."""
    ids: list | None
    """Glacier id per label 1..n (``None`` for a raster reference)."""
    clipped: list[bool] | None
    """Per glacier: whether its outline reaches beyond the prediction grid."""

    @property
    def n_labels(self) -> int:
        return 1 if self.ids is None else len(self.ids)

    @property
    def is_raster(self) -> bool:
        return self.ids is None


def _split_reference(block: np.ndarray, is_raster: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, labels)`` of a reference block (see :attr:`_Reference.data`)."""
    if is_raster:
        return block, (block == _GLACIER).astype(np.uint8)
    return (block > 0).astype(np.uint8), block


def _reference_from_raster(reference: xr.DataArray, prediction: xr.DataArray, grid: _Grid) -> _Reference:
    """A 0/1 (NaN = missing) DataArray on the prediction's grid."""
    import rioxarray  # noqa: F401

    if set(reference.dims) != {"y", "x"}:
        extra = [d for d in reference.dims if d not in ("y", "x")]
        if any(reference.sizes[d] != 1 for d in extra) or set(reference.dims) - set(extra) != {"y", "x"}:
            raise InputShapeError(
                f"reference raster must be 2-D (y, x) like the prediction; it has dims {dict(reference.sizes)}."
            )
        reference = reference.squeeze(extra, drop=True)
    reference = reference.transpose("y", "x")
    if reference.shape != grid.shape:
        raise InputShapeError(
            f"reference raster has shape {reference.shape} but the prediction {grid.shape}; put it on the "
            "prediction's grid (e.g. reference.rio.reproject_match(prediction, resampling=Resampling.nearest)) "
            "or pass the reference outlines as a GeoDataFrame."
        )
    for name in ("x", "y"):
        if name in reference.coords:
            ours, theirs = np.asarray(prediction[name], float), np.asarray(reference[name], float)
            tol = 1e-3 * max(abs(grid.transform.a), abs(grid.transform.e))
            if not np.allclose(ours, theirs, rtol=0, atol=tol):
                raise InputShapeError(
                    f"reference raster's {name} coordinates differ from the prediction's; put it on the same "
                    "grid (reference.rio.reproject_match(prediction)) or pass outlines as a GeoDataFrame."
                )
    ref_crs = _pyproj(reference.rio.crs)
    if ref_crs is not None and grid.crs is not None and ref_crs != grid.crs:
        raise CRSError(
            f"reference raster is in {ref_crs.to_string()} but the prediction in {grid.crs.to_string()}; "
            "reproject it with reference.rio.reproject_match(prediction) or pass outlines as a GeoDataFrame."
        )
    if reference.dtype.kind not in "biuf":
        raise InvalidArgumentError(f"reference raster has dtype {reference.dtype}; pass a 0/1 mask.")
    data = _as_dask(reference.data).rechunk(grid.chunks)
    codes = data.map_blocks(_reference_codes, nodata=_nodata(reference), dtype=np.uint8,
                            meta=np.empty((0, 0), np.uint8))
    return _Reference(data=codes, ids=None, clipped=None)


def _nodata(array: xr.DataArray) -> float | None:
    """The raster's declared no-data value (rioxarray ``nodata``/``_FillValue``), if any and not NaN."""
    value = array.rio.nodata
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _reference_codes(block: np.ndarray, nodata: float | None) -> np.ndarray:
    """0/1 as they are, 2 for NaN and the no-data value, 3 for any other value."""
    out = np.full(block.shape, _BAD, np.uint8)
    out[block == 0] = _BG
    out[block == 1] = _GLACIER
    if block.dtype.kind == "f":
        out[np.isnan(block)] = _MISSING
    if nodata is not None:
        out[block == nodata] = _MISSING
    return out


def _label_dtype(n_labels: int) -> np.dtype:
    """The smallest dtype rasterio can burn that holds labels 0..n (halos move fewer bytes)."""
    return np.dtype(np.uint8 if n_labels < 2**8 else np.uint16 if n_labels < 2**16 else np.int32)


def _glacier_ids(gdf, id_column: str | None) -> list:
    """JSON-friendly ids: ``id_column``, else the first of :data:`ID_COLUMNS`, else the row index."""
    column = id_column_of(gdf, id_column, name="reference outlines")
    values = gdf[column].tolist() if column else gdf.index.tolist()
    return [v.item() if isinstance(v, np.generic) else v if isinstance(v, int | str) else str(v) for v in values]


def _prepare_outlines(reference: Any, grid: _Grid, id_column: str | None):
    """Polygons in the prediction's CRS that touch the grid, with their ids; raises if none do."""
    import shapely

    gdf = read_outlines(reference, name="reference outlines")
    if gdf.crs is None:
        raise CRSError(
            "The reference outlines have no CRS; set it with reference.set_crs('EPSG:xxxx') "
            "(the CRS the coordinates were digitised in)."
        )
    if grid.crs is None:
        raise CRSError(
            "The prediction has no CRS, so the reference outlines cannot be placed on its grid; attach "
            "one with prediction.rio.write_crs('EPSG:xxxx')."
        )
    ids = _glacier_ids(gdf, id_column)
    geoms = np.asarray(gdf.geometry.to_crs(grid.crs).values if gdf.crs != grid.crs else gdf.geometry.values)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    kinds = set(shapely.get_type_id(geoms[keep]).tolist())
    if kinds - {3, 6}:  # Polygon, MultiPolygon
        raise InvalidArgumentError(
            "reference outlines must be Polygons or MultiPolygons; found geometry types "
            f"{sorted(shapely.GeometryType(k).name for k in kinds - {3, 6})}. Drop or buffer them first."
        )
    extent = shapely.box(*grid.bounds)
    keep &= shapely.intersects(geoms, extent) & np.isfinite(shapely.bounds(geoms)).all(axis=1)
    if not keep.any():
        raise NoOverlapError(
            f"No reference outline overlaps the prediction (grid bounds {tuple(round(b, 3) for b in grid.bounds)} "
            f"in {grid.crs.to_string()}; outlines given in {gdf.crs.to_string()}). Check that the outlines' CRS "
            "is set correctly and that they cover the predicted area; for a glacier-free area pass "
            "xr.zeros_like(prediction) as the reference."
        )
    geoms = geoms[keep]
    ids = [i for i, k in zip(ids, keep, strict=True) if k]
    clipped = (~shapely.within(geoms, extent)).tolist()
    return geoms, ids, clipped


def _block_transforms(grid: _Grid) -> list[list[tuple[Affine, tuple[int, int]]]]:
    """Per chunk: its transform and shape."""
    rows = np.cumsum((0,) + grid.chunks[0])
    cols = np.cumsum((0,) + grid.chunks[1])
    return [
        [(grid.transform @ Affine.translation(int(cols[j]), int(rows[i])), (hy, hx))
         for j, hx in enumerate(grid.chunks[1])]
        for i, hy in enumerate(grid.chunks[0])
    ]


def _rasterize_block(geoms: np.ndarray, values: np.ndarray, transform: Affine, shape: tuple[int, int],
                     dtype: np.dtype) -> np.ndarray:
    """Burn glacier numbers (pixel-centre rule; later outlines win where outlines overlap)."""
    from rasterio import features

    if len(geoms) == 0:
        return np.zeros(shape, dtype)
    # rasterio silences a warning with warnings.catch_warnings(), which is not thread-safe: two
    # concurrent calls can leak a spurious NotGeoreferencedWarning. Burning is cheap; take turns.
    with _RASTERIZE_LOCK:
        return features.rasterize(
            zip(geoms, values.tolist(), strict=True), out_shape=shape, transform=transform, fill=0, all_touched=False,
            dtype=dtype.name,
        )


def _reference_from_outlines(reference: Any, grid: _Grid, id_column: str | None) -> _Reference:
    """Outlines burnt lazily, chunk by chunk, onto the prediction grid."""
    import shapely
    from dask.base import tokenize

    geoms, ids, clipped = _prepare_outlines(reference, grid, id_column)
    tree = shapely.STRtree(geoms)
    dtype = _label_dtype(len(geoms))
    blocks = _block_transforms(grid)
    boxes = [shapely.box(*bounds_of(t, s)) for row in blocks for t, s in row]
    box_idx, geom_idx = tree.query(boxes, predicate="intersects")
    token = tokenize(shapely.to_wkb(geoms).tolist(), grid.transform, grid.chunks)
    rasterize = dask.delayed(_rasterize_block, pure=True)
    rows = []
    for i, row in enumerate(blocks):
        out = []
        for j, (transform, shape) in enumerate(row):
            sel = np.sort(geom_idx[box_idx == i * len(row) + j])
            task = rasterize(geoms[sel], sel + 1, transform, shape, dtype,
                             dask_key_name=f"rasterize-reference-{token}-{i}-{j}")
            out.append(da.from_delayed(task, shape=shape, dtype=dtype, meta=np.empty((0, 0), dtype)))
        rows.append(out)
    return _Reference(data=da.block(rows), ids=ids, clipped=clipped)


# ----------------------------------------------------------------------------- pixel metrics


def _prediction_codes(block: np.ndarray, threshold: float, nodata: float | None) -> np.ndarray:
    """0 background, 1 glacier (``>= threshold``), 2 NaN or no-data, 3 outside [0, 1]."""
    out = (block >= threshold).astype(np.uint8)
    out[(block < 0) | (block > 1)] = _BAD
    if block.dtype.kind == "f":
        out[np.isnan(block)] = _MISSING
    if nodata is not None:
        out[block == nodata] = _MISSING
    return out


def _counts(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Counts of ``2 * ref + pred`` over valid pixels, then excluded / bad-prediction / bad-reference.

    uint8 throughout (a ``bincount`` would make an int64 copy: 8 bytes per pixel).
    """
    code = (2 * ref + pred).astype(np.uint8, copy=False)
    code[(pred == _MISSING) | (ref == _MISSING)] = _N_EXCLUDED
    code[pred == _BAD] = _N_BAD_PRED
    code[ref == _BAD] = _N_BAD_REF
    return np.array([np.count_nonzero(code == k) for k in range(_N_COUNT_BINS)], np.int64)


def _count_block(pred: np.ndarray, ref: np.ndarray, *, is_raster: bool) -> np.ndarray:
    return _counts(pred, _split_reference(ref, is_raster)[0])[None, None, :]


def _pixel_counts(pred_codes: da.Array, reference: _Reference) -> da.Array:
    """Lazy vector of :data:`_N_COUNT_BINS` counts (one task per chunk, then a tree sum)."""
    per_block = da.map_blocks(
        _count_block, pred_codes, reference.data, is_raster=reference.is_raster, new_axis=2,
        chunks=((1,) * len(pred_codes.chunks[0]), (1,) * len(pred_codes.chunks[1]), (_N_COUNT_BINS,)),
        dtype=np.int64, meta=np.empty((0, 0, 0), np.int64),
    )
    return per_block.sum(axis=(0, 1))


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def pixel_metrics(tn: int, fp: int, fn: int, tp: int) -> dict[str, Any]:
    """OA, per-class precision / recall / F1 / IoU and their means from confusion counts.

    A metric whose denominator is 0 is ``None`` (e.g. the glacier precision of a prediction with
    no glacier pixel); ``mean_f1`` and ``miou`` average the classes where they are defined.
    """
    n = tn + fp + fn + tp
    per_class = {"background": (tn, fn, fp), "glacier": (tp, fp, fn)}  # (TP, FP, FN) with c as positive
    out: dict[str, Any] = {"oa": _ratio(tp + tn, n)}
    for name, fn_ in (
        ("precision", lambda t, p, f: _ratio(t, t + p)),
        ("recall", lambda t, p, f: _ratio(t, t + f)),
        ("f1", lambda t, p, f: _ratio(2 * t, 2 * t + p + f)),
        ("iou", lambda t, p, f: _ratio(t, t + p + f)),
    ):
        out[name] = {c: fn_(*per_class[c]) for c in CLASSES}
    out["mean_f1"] = _mean(list(out["f1"].values()))
    out["miou"] = _mean(list(out["iou"].values()))
    return out


# ----------------------------------------------------------------------------- object metrics


@dataclass(frozen=True)
class _Distances:
    """Boundary-distance bins: halo and cap in pixels per axis, and the metres of each bin."""

    pixel_m: tuple[float, float]
    cap_m: float

    @property
    def reach(self) -> tuple[int, int]:
        """Largest pixel offset (rows, cols) within the cap."""
        return tuple(int(math.floor(self.cap_m / p + 1e-9)) for p in self.pixel_m)

    @property
    def halo(self) -> tuple[int, int]:
        """Halo per axis: the reach plus one pixel to find boundary pixels at the halo's edge."""
        return (self.reach[0] + 1, self.reach[1] + 1)

    @property
    def n_bins(self) -> int:
        """One bin per (|dy|, |dx|) offset within the reach, plus one for 'beyond the cap'."""
        return (self.reach[0] + 1) * (self.reach[1] + 1) + 1

    @cached_property
    def within_cap(self) -> np.ndarray:
        """Per bin (without the last): whether its distance is within the cap."""
        return self.metres()[:-1] <= self.cap_m * (1 + 1e-9)

    def metres(self) -> np.ndarray:
        """Distance of each bin in metres (the last, 'beyond', bin counts as the cap)."""
        dy, dx = np.divmod(np.arange(self.n_bins - 1), self.reach[1] + 1)
        return np.append(np.hypot(dy * self.pixel_m[0], dx * self.pixel_m[1]), self.cap_m)


def _boundary(mask: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a valid non-``mask`` 4-neighbour (grid edges and gaps are no boundary)."""
    return mask & ndimage.binary_dilation(valid & ~mask, _FOUR)


def _nearest(target: np.ndarray, pixel_m: tuple[float, float]) -> np.ndarray | None:
    """Row/col indices (int32) of the nearest ``target`` pixel for every pixel; ``None`` without target."""
    if not target.any():
        return None
    sampling = None if pixel_m[0] == pixel_m[1] else pixel_m
    return ndimage.distance_transform_edt(~target, sampling=sampling, return_distances=False, return_indices=True)


def _strips(src: np.ndarray):
    """``(ys, xs)`` of the ``src`` pixels, :data:`_STRIP_ROWS` rows at a time (bounded temporaries)."""
    for r0 in range(0, src.shape[0], _STRIP_ROWS):
        ys, xs = np.nonzero(src[r0 : r0 + _STRIP_ROWS])
        if len(ys):
            yield ys + r0, xs


def _bins(ys: np.ndarray, xs: np.ndarray, idx: np.ndarray | None, dist: _Distances) -> np.ndarray:
    """Histogram bin of the distance from each pixel to its nearest target (last bin: beyond the cap)."""
    beyond = dist.n_bins - 1
    if idx is None:
        return np.full(len(ys), beyond, np.int64)
    dy = np.abs(idx[0][ys, xs].astype(np.int64) - ys)
    dx = np.abs(idx[1][ys, xs].astype(np.int64) - xs)
    near = (dy <= dist.reach[0]) & (dx <= dist.reach[1])
    key = np.where(near, dy * (dist.reach[1] + 1) + dx, 0)
    return np.where(near & dist.within_cap[key], key, beyond)


def _histogram(src: np.ndarray, target: np.ndarray, dist: _Distances) -> np.ndarray:
    """Exact histogram of source-to-target distances over :meth:`_Distances.metres` bins."""
    idx = _nearest(target, dist.pixel_m)
    hist = np.zeros(dist.n_bins, np.int64)
    for ys, xs in _strips(src):
        hist += np.bincount(_bins(ys, xs, idx, dist), minlength=dist.n_bins)
    return hist


def _attributed(src: np.ndarray, labels: np.ndarray, n_labels: int, dist: _Distances) -> np.ndarray:
    """Count of ``src`` pixels per nearest reference glacier within the cap (index 0: none)."""
    idx = _nearest(labels > 0, dist.pixel_m)
    counts = np.zeros(n_labels + 1, np.int64)
    for ys, xs in _strips(src):
        if idx is None:
            counts[0] += len(ys)
            continue
        within = _bins(ys, xs, idx, dist) < dist.n_bins - 1
        zone = np.where(within, labels[idx[0][ys, xs], idx[1][ys, xs]], 0)
        counts += np.bincount(zone, minlength=n_labels + 1)
    return counts


def _label_counts(labels: np.ndarray, mask: np.ndarray, n_labels: int) -> np.ndarray:
    """Pixels of ``mask`` per label 0..n."""
    counts = np.zeros(n_labels + 1, np.int64)
    for r0 in range(0, labels.shape[0], _STRIP_ROWS):
        rows = slice(r0, r0 + _STRIP_ROWS)
        counts += np.bincount(labels[rows][mask[rows]], minlength=n_labels + 1)
    return counts


def _object_block(pred: np.ndarray, ref: np.ndarray, *, dist: _Distances, depth: tuple[int, int], n_labels: int,
                  is_raster: bool, block_info=None) -> np.ndarray:
    """Per chunk (with a halo of ``depth``): pixel counts, boundary-distance histograms, per-glacier counts.

    Output vector: the :data:`_N_COUNT_BINS` pixel counts of the core, histogram
    reference->prediction, histogram prediction->reference (each ``dist.n_bins``), then per
    label 0..n: valid reference pixels, predicted pixels inside the footprint, predicted pixels
    attributed to the glacier (label 0: to none). Memory: about 15 bytes per window pixel.
    """
    ref_codes, labels = _split_reference(ref, is_raster)
    (iy, ix), (ny, nx) = block_info[0]["chunk-location"], block_info[0]["num-chunks"]
    hy, hx = depth
    window = (slice(hy if iy > 0 else 0, pred.shape[0] - (hy if iy < ny - 1 else 0)),
              slice(hx if ix > 0 else 0, pred.shape[1] - (hx if ix < nx - 1 else 0)))
    pixels = _counts(pred[window], ref_codes[window])
    core = np.zeros(pred.shape, bool)
    core[window] = True

    valid = (pred < _MISSING) & (ref_codes != _MISSING)
    pred_mask = (pred == _GLACIER) & valid
    ref_edge = _boundary((labels > 0) & valid, valid)
    pred_edge = _boundary(pred_mask, valid)
    hist_rp = _histogram(ref_edge & core, pred_edge, dist)
    hist_pr = _histogram(pred_edge & core, ref_edge, dist)
    del ref_edge, pred_edge

    valid &= core
    pred_mask &= core
    ref_count = _label_counts(labels, valid, n_labels)
    inside = _label_counts(labels, pred_mask, n_labels)
    attributed = _attributed(pred_mask, labels, n_labels, dist)
    return np.concatenate([pixels, hist_rp, hist_pr, ref_count, inside, attributed])[None, None, :]


def _halo_depth(chunks: tuple[tuple[int, ...], tuple[int, ...]], halo: tuple[int, int]):
    """Depth per axis and the chunks to use: an axis the halo would cover whole becomes one chunk."""
    depth, out = [], []
    for c, h in zip(chunks, halo, strict=True):
        if len(c) == 1 or h >= sum(c):
            depth.append(0)
            out.append((sum(c),))
        else:
            depth.append(h)
            out.append(c)
    return tuple(depth), tuple(out)


def _object_counts(pred_codes: da.Array, reference: _Reference, dist: _Distances) -> da.Array:
    """Lazy vector of pixel and object counts: one task per chunk with a halo, then a tree sum."""
    depth, chunks = _halo_depth(pred_codes.chunks, dist.halo)
    ref = reference.data
    if chunks != pred_codes.chunks:
        pred_codes, ref = pred_codes.rechunk(chunks), ref.rechunk(chunks)
    pred_h = da.overlap.overlap(pred_codes, depth={0: depth[0], 1: depth[1]}, boundary="none")
    ref_h = da.overlap.overlap(ref, depth={0: depth[0], 1: depth[1]}, boundary="none")
    size = _N_COUNT_BINS + 2 * dist.n_bins + 3 * (reference.n_labels + 1)
    per_block = da.map_blocks(
        _object_block, pred_h, ref_h, dist=dist, depth=depth, n_labels=reference.n_labels,
        is_raster=reference.is_raster, new_axis=2,
        chunks=((1,) * len(pred_h.chunks[0]), (1,) * len(pred_h.chunks[1]), (size,)),
        dtype=np.int64, meta=np.empty((0, 0, 0), np.int64),
    )
    return per_block.sum(axis=(0, 1))


def _distance_summary(hist: np.ndarray, metres: np.ndarray) -> dict[str, Any]:
    """Mean and 95th percentile (inverted CDF: the smallest d with >= 95 % of distances <= d)."""
    n = int(hist.sum())
    if n == 0:
        return {"mean_m": None, "p95_m": None, "n": 0, "capped": 0}
    order = np.argsort(metres, kind="stable")
    cum = np.cumsum(hist[order])
    p95 = metres[order][np.searchsorted(cum, 0.95 * n)]
    return {"mean_m": float(hist @ metres / n), "p95_m": float(p95), "n": n, "capped": int(hist[-1])}


def _object_metrics(vector: np.ndarray, reference: _Reference, dist: _Distances) -> dict[str, Any]:
    vector = vector[_N_COUNT_BINS:]
    nb, counts = dist.n_bins, reference.n_labels + 1
    hist_rp, hist_pr = vector[:nb], vector[nb : 2 * nb]
    ref_count, inside, attributed = (vector[2 * nb + k * counts : 2 * nb + (k + 1) * counts] for k in range(3))
    metres = dist.metres()
    both = _distance_summary(hist_rp + hist_pr, metres)
    km2 = dist.pixel_m[0] * dist.pixel_m[1] / 1e6
    out: dict[str, Any] = {
        "boundary_mean_m": both["mean_m"],
        "boundary_p95_m": both["p95_m"],
        "boundary": {
            "ref_to_pred": _distance_summary(hist_rp, metres),
            "pred_to_ref": _distance_summary(hist_pr, metres),
            "n": both["n"],
            "max_distance_m": dist.cap_m,
            "capped_fraction": _ratio(both["capped"], both["n"]),
        },
        "area": {
            "ref_km2": float(ref_count[1:].sum() * km2),
            "pred_km2": float(attributed.sum() * km2),
            "pred_matched_km2": float(attributed[1:].sum() * km2),
            "unmatched_pred_km2": float(attributed[0] * km2),
        },
        "per_glacier": None,
    }
    if reference.ids is not None:
        out["per_glacier"] = [
            _glacier_row(gid, int(ref_count[k + 1]), int(inside[k + 1]), int(attributed[k + 1]), km2, clipped)
            for k, (gid, clipped) in enumerate(zip(reference.ids, reference.clipped, strict=True))
        ]
    return out


def _glacier_row(gid: Any, n_ref: int, n_inside: int, n_pred: int, km2: float, clipped: bool) -> dict[str, Any]:
    ref, pred = n_ref * km2, n_pred * km2
    return {
        "id": gid,
        "area_ref_km2": ref,
        "area_pred_km2": pred,
        "area_pred_inside_km2": n_inside * km2,
        "area_error_km2": pred - ref,
        "area_error_pct": 100.0 * (pred - ref) / ref if n_ref else None,
        "clipped": bool(clipped),
    }


# ----------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class LazyEvaluation:
    """The evaluation as one lazy Dask vector; :meth:`compute` returns the metrics dict."""

    counts: da.Array
    """Lazy int64 vector: TN, FP, FN, TP, excluded pixels, invalid prediction values, invalid
    reference values; with object metrics, then the boundary histograms and per-glacier counts."""
    threshold: float
    reference: _Reference
    distances: _Distances | None
    """Distance bins (``None`` without object metrics)."""

    def compute(self, **kwargs: Any) -> dict[str, Any]:
        """Compute in one pass (``kwargs`` go to :func:`dask.compute`) and summarise."""
        (counts,) = dask.compute(self.counts, **kwargs)
        counts = np.asarray(counts)
        _raise_on_bad_values(counts)
        tn, fp, fn, tp = (int(c) for c in counts[:4])
        out: dict[str, Any] = {
            "n_pixels": tn + fp + fn + tp,
            "n_excluded": int(counts[_N_EXCLUDED]),
            "threshold": float(self.threshold),
            "confusion": [[tn, fp], [fn, tp]],
        }
        out.update(pixel_metrics(tn, fp, fn, tp))
        if self.distances is not None:
            out.update(_object_metrics(counts, self.reference, self.distances))
        return out


def _raise_on_bad_values(counts: np.ndarray) -> None:
    if counts[_N_BAD_PRED]:
        raise InvalidArgumentError(
            f"prediction has {int(counts[_N_BAD_PRED])} values outside [0, 1]; pass probabilities (e.g. a "
            "softmax/sigmoid output) or a 0/1 mask, not logits or class ids."
        )
    if counts[_N_BAD_REF]:
        raise InvalidArgumentError(
            f"reference raster has {int(counts[_N_BAD_REF])} values other than 0, 1 and NaN; pass a 0/1 mask "
            "(e.g. (reference > 0).astype('uint8')) or the outlines as a GeoDataFrame."
        )


def evaluate_lazy(
    prediction: xr.DataArray,
    reference: Any,
    *,
    threshold: float = 0.5,
    objects: bool = True,
    max_distance_m: float | None = None,
    id_column: str | None = None,
) -> LazyEvaluation:
    """Build the evaluation graph without computing anything; see :func:`evaluate`.

    The reference outlines are read, reprojected and indexed (an ``STRtree``) here; no pixel
    of the prediction is computed until :meth:`LazyEvaluation.compute`.
    """
    _check_options(threshold, objects, max_distance_m)
    prediction = _check_prediction(prediction)
    data = _as_dask(prediction.data)
    grid = _grid_of(prediction, data)
    dist = None
    if objects:
        pixel_m = grid.pixel_size_m()  # raises early without a projected CRS
        cap = float(max_distance_m) if max_distance_m is not None else DEFAULT_MAX_DISTANCE_PX * max(pixel_m)
        dist = _Distances(pixel_m=pixel_m, cap_m=cap)
    if isinstance(reference, xr.DataArray):
        ref = _reference_from_raster(reference, prediction, grid)
    else:
        ref = _reference_from_outlines(reference, grid, id_column)
    pred_codes = data.map_blocks(_prediction_codes, threshold=float(threshold), nodata=_nodata(prediction),
                                 dtype=np.uint8, meta=np.empty((0, 0), np.uint8))
    # with object metrics the same tasks make the pixel counts: one pass over the prediction
    counts = _pixel_counts(pred_codes, ref) if dist is None else _object_counts(pred_codes, ref, dist)
    return LazyEvaluation(counts=counts, threshold=float(threshold), reference=ref, distances=dist)


def evaluate(
    prediction: xr.DataArray,
    reference: Any,
    *,
    threshold: float = 0.5,
    objects: bool = True,
    max_distance_m: float | None = None,
    id_column: str | None = None,
) -> dict[str, Any]:
    """Pixel and object accuracy of a glacier prediction against a reference.

    Parameters
    ----------
    prediction
        ``(y, x)`` DataArray of glacier probability in [0, 1] (or a 0/1 mask), NumPy- or
        Dask-backed, with x/y pixel-centre coordinates and, for outlines or object metrics, a
        CRS (rioxarray ``spatial_ref``); e.g. ``cube.glacier.predict(model)``. NaN pixels (and
        the declared ``rio.nodata`` value) are excluded from every metric.
    reference
        Reference glacier outlines: a GeoDataFrame (or GeoSeries, or a path geopandas reads) of
        Polygons/MultiPolygons in any CRS; they are reprojected to the prediction's CRS and
        rasterised per chunk with the pixel-centre rule. Or a 0/1 DataArray on the prediction's
        grid (NaN or its ``rio.nodata`` value = no reference; those pixels are excluded too).
    threshold
        Pixels with probability ``>= threshold`` are glacier (the rule of
        :func:`glacierxr.vectorize.outlines`).
    objects
        Also compute the object metrics (boundary distances, areas, per-glacier areas). They
        need a projected CRS.
    max_distance_m
        Cap of boundary distances, and the reach within which predicted ice is attributed to a
        reference glacier; also the halo of each chunk, so memory per task grows with it.
        Default: 64 pixels (640 m at 10 m). Distances up to it are exact; longer ones count as
        ``max_distance_m`` (see ``boundary.capped_fraction``).
    id_column
        Column of glacier ids in the outlines; default the first of :data:`ID_COLUMNS` present,
        else the row index.

    Returns
    -------
    dict
        JSON-serialisable (floats, ints, strings, ``None``, lists, dicts); a ratio whose
        denominator is 0 is ``None``.

        Pixel metrics (Peng et al. 2023, Eqs. 11-13; for class c, TP/FP/FN count pixels with c
        as the positive class; N = all valid pixels):

        - ``n_pixels``: N, pixels scored (prediction and reference both present).
        - ``n_excluded``: pixels left out because the prediction (or reference raster) is NaN
          or no-data.
        - ``threshold``: the threshold used.
        - ``confusion``: ``[[tn, fp], [fn, tp]]`` (rows: reference background/glacier; columns:
          prediction background/glacier).
        - ``oa``: overall accuracy ``(TP + TN) / N``.
        - ``precision``, ``recall``, ``f1``, ``iou``: dicts ``{"background": ., "glacier": .}``
          with ``P = TP / (TP + FP)``, ``R = TP / (TP + FN)``, ``F1 = 2PR / (P + R)`` (computed as
          ``2TP / (2TP + FP + FN)``), ``IoU = TP / (TP + FP + FN)``.
        - ``mean_f1``, ``miou``: the mean of ``f1`` / ``iou`` over the two classes (over the
          classes where defined).

        Object metrics (with ``objects=True``). A *boundary pixel* of a mask is a mask pixel
        with a 4-neighbour that is valid and outside the mask (the grid edge and NaN gaps make
        no boundary). Distances run between pixel centres, in metres:

        - ``boundary_mean_m``, ``boundary_p95_m``: mean and 95th percentile of the symmetric
          boundary distance: the distances of every reference boundary pixel to the nearest
          predicted boundary pixel together with those of every predicted boundary pixel to the
          nearest reference boundary pixel (the percentile is the smallest d with at least 95 %
          of distances <= d). Identical masks give 0.
        - ``boundary``: ``ref_to_pred`` and ``pred_to_ref`` (each ``mean_m``, ``p95_m``, ``n``
          boundary pixels, ``capped`` pixels beyond the cap), ``n`` (both directions),
          ``max_distance_m`` (the cap) and ``capped_fraction``. With no boundary at all in
          the other mask every distance is capped.
        - ``area``: ``ref_km2`` (reference glacier pixels scored), ``pred_km2`` (all predicted
          glacier pixels scored), ``pred_matched_km2`` (the part attributed to reference
          glaciers) and ``unmatched_pred_km2`` (predicted glacier farther than
          ``max_distance_m`` from every reference glacier).
        - ``per_glacier``: for outlines, one dict per reference glacier that overlaps the grid
          (in the order of the outlines): ``id``; ``area_ref_km2`` (pixels of its rasterised
          footprint where the prediction is valid); ``area_pred_km2`` (predicted glacier pixels
          whose nearest reference-glacier pixel belongs to it and lies within
          ``max_distance_m``: a Voronoi split of the buffered reference, so both misses inside
          the outline and over-detection along it count); ``area_pred_inside_km2`` (predicted
          pixels inside the footprint); ``area_error_km2 = area_pred - area_ref``;
          ``area_error_pct = 100 * area_error / area_ref``; ``clipped`` (the outline reaches
          beyond the grid, so only its part on the grid is scored). ``None`` for a raster
          reference (it has no glacier identities).

    Raises
    ------
    CRSError
        When the outlines or the prediction have no CRS, or no outline overlaps the prediction;
        with ``objects=True``, when the prediction's CRS is missing or geographic.
    InputShapeError
        When the prediction is not 2-D ``(y, x)``, or a reference raster is on another grid.
    InvalidArgumentError
        On bad options, non-polygon outlines, prediction values outside [0, 1] or reference
        raster values other than 0, 1 and NaN.

    Notes
    -----
    One Dask pass: the scheduler holds about one row of chunks (for the halos) and each task
    its chunk plus a halo of ``max_distance_m`` (about 17 bytes per pixel of that window) and
    O(number of reference glaciers) counters; never the whole grid. Use
    :func:`evaluate_lazy` to build the graph and compute it later (e.g. on a distributed
    cluster). Outlines are reprojected vertex by vertex. Overlapping outlines: the later one
    owns the shared pixels. A predicted pixel equally near two reference glaciers goes to the
    one the distance transform finds first; that can move a few pixels between neighbouring
    glaciers when the grid is flipped, but totals, pixel metrics and boundary distances do not
    depend on it, nor (in our tests) on the chunking.

    Examples
    --------
    >>> scores = gx.evaluate(prob, gpd.read_file("rgi.gpkg"))      # doctest: +SKIP
    >>> scores["miou"], scores["iou"]["glacier"], scores["boundary_p95_m"]   # doctest: +SKIP
    """
    return evaluate_lazy(
        prediction, reference, threshold=threshold, objects=objects, max_distance_m=max_distance_m,
        id_column=id_column,
    ).compute()
