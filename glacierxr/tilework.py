"""One production tile, start to finish, inside one task: the unit of a regional run.

:func:`run_tile` builds the tile's own small graph (cube on the tile's grid -> predict -> Zarr
of the core) and computes it on the threaded scheduler *inside* the task, so that what a Dask
cluster sees of a whole mountain range is one task per tile, whatever the size of the range
(the "stackstac within dask" pattern). It then polygonises the core on the zone's pixel lattice
and splits the glaciers in two:

* **whole** glaciers (inside the core, not reaching the zone line) get their RGI-style
  attributes right here, from the tile's in-memory DEM, and are written in lon/lat to
  ``glaciers.parquet``;
* **pieces** that touch the core's edge or reach the zone line are written in lattice pixel
  coordinates to ``pieces.parquet`` for :mod:`glacierxr.merge`.

Outputs go to ``<run>/tiles/<tile id>/``; ``done.json`` (the tile's ledger entry) is written
last, atomically, so a tile is either done or runs again. A tile run again after a kill resumes
its Zarr chunk by chunk and rewrites everything else identically.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import shapely
import shapely.affinity
from pyproj import Geod, Transformer

from glacierxr.tiles import Tile, lattice_top

__all__ = ["TileJob", "run_tile", "lattice_to_lonlat", "geodesic_km2", "tile_dir"]

_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class TileJob:
    """Everything a worker needs to run one tile (small and picklable: item dicts, a model handle)."""

    tile: Tile
    items: dict[str, list[dict]]
    model: object
    """A :class:`~glacierxr.predict.ModelHandle` (weights load once per process) or a small model."""
    run_dir: str
    window: int = 512
    overlap: int = 64
    chunk: int = 2048
    batch_size: int = 8
    device: str = "auto"
    threshold: float = 0.5
    min_area_km2: float = 0.05
    min_hole_km2: float = 0.01
    date: str | None = None
    dem_source: str | None = None
    reader: type | None = None
    preview_px: int = 256
    """Side of the tile's true-colour preview for the AOI's quicklook (0: none)."""
    split: bool = True
    """Split ice complexes into glaciers at ice divides (:func:`glacierxr.divides.split_glaciers`)."""


def _write_preview(path: Path, job: TileJob) -> None:
    """A coarse true-colour composite of the tile's core (read from COG overviews) for the quicklook."""
    import glacierxr as gx
    from glacierxr.geo import Grid

    tile = job.tile
    s2 = {k: v for k, v in job.items.items() if k != "dem" and k != "sentinel-1"}
    xmin, ymin, xmax, ymax = tile.core_bounds
    res = max(tile.resolution, max(xmax - xmin, ymax - ymin) / job.preview_px)
    grid = Grid(tile.crs, res, (xmin, ymax - math.ceil((ymax - ymin) / res) * res,
                                xmin + math.ceil((xmax - xmin) / res) * res, ymax))
    rgb = np.full((3, *grid.shape), np.nan, np.float32)
    try:
        cube = gx.open_cube(s2, grid=grid, chunks=max(grid.shape), indices=False, reader=job.reader)
        rgb = np.stack([cube[b].values for b in ("B04", "B03", "B02")]).astype(np.float32)
    except (KeyError, ValueError):  # no optical sensor with these bands: no preview
        pass
    with path.open("wb") as f:
        np.savez_compressed(f, rgb=rgb.astype(np.float16), bounds=np.array(grid.bounds), epsg=tile.epsg)


def tile_dir(run_dir: str | Path, tile_id: str) -> Path:
    """Folder of one tile's outputs in a run."""
    return Path(run_dir) / "tiles" / tile_id


def write_atomic(path: Path, write) -> None:
    """``write(tmp)`` then rename into place (unique temporary name: concurrent writers never clash)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def lattice_to_lonlat(polys_px, epsg: int, resolution: float) -> np.ndarray:
    """Polygons in a zone's lattice pixel coordinates -> lon/lat (edges densified to 4 px)."""
    polys = shapely.segmentize(np.asarray(polys_px, dtype=object), 4.0)
    top = lattice_top(epsg)
    matrix = [resolution, 0.0, 0.0, -resolution, 0.0, top]
    fwd = Transformer.from_crs(epsg, 4326, always_xy=True)
    out = []
    for p in polys:
        utm = shapely.affinity.affine_transform(p, matrix)
        out.append(shapely.transform(utm, lambda c: np.column_stack(fwd.transform(c[:, 0], c[:, 1]))))
    return np.array(out, dtype=object)


def geodesic_km2(geoms_ll) -> np.ndarray:
    """Geodesic area on WGS 84 of lon/lat polygons, in km²."""
    return np.array([abs(_GEOD.geometry_area_perimeter(g)[0]) / 1e6 for g in geoms_ll], dtype=np.float64)


def fill_holes_px(poly, min_hole_px: float):
    """Fill the holes of a pixel-space (Multi)Polygon smaller than ``min_hole_px`` pixels."""
    from glacierxr.vectorize import _fill_small_holes

    return _fill_small_holes(poly, min_hole_px)


def meridian_x(epsg: int, lon: float, y: np.ndarray) -> np.ndarray:
    """Easting where meridian ``lon`` crosses each northing ``y`` of a UTM zone's grid.

    Newton's method on the inverse projection, from the zone's central meridian: the result
    depends only on ``(lon, y)``, never on which tile asks, so neighbouring tiles agree.
    """
    inv = Transformer.from_crs(epsg, 4326, always_xy=True)
    x = np.full(np.shape(y), 500_000.0)
    for _ in range(8):
        lon_x, _ = inv.transform(x, y)
        lon_dx, _ = inv.transform(x + 1.0, y)
        x = x + (lon - lon_x) / (lon_dx - lon_x)
    return x


def strip_columns(tile: Tile) -> tuple[np.ndarray, np.ndarray]:
    """Per core row, the columns ``[lo, hi)`` of pixels that reach into the tile's zone strip.

    A zone line is a meridian, a gentle curve on the zone's grid: its easting is found at each
    row edge (:func:`meridian_x`), and a pixel is kept when any part of it lies inside the
    strip (the merge then clips the polygons at the line exactly).
    """
    (rows, n), res = tile.core_shape, tile.resolution
    xmin, _, _, ymax = tile.core_bounds
    y_edges = ymax - np.arange(rows + 1) * res
    west, _, east, _ = tile.strip
    x_w, x_e = meridian_x(tile.epsg, west, y_edges), meridian_x(tile.epsg, east, y_edges)
    lo = np.clip(np.floor((np.minimum(x_w[:-1], x_w[1:]) - xmin) / res).astype(np.int64), 0, n)
    hi = np.clip(np.ceil((np.maximum(x_e[:-1], x_e[1:]) - xmin) / res).astype(np.int64), 0, n)
    return lo, hi


def _owned(data: da.Array, lo: np.ndarray, hi: np.ndarray) -> da.Array:
    """``data`` with the pixels outside ``[lo, hi)`` per row set to 0 (not glacier)."""

    def mask(block, block_info=None):
        (r0, r1), (c0, c1) = block_info[0]["array-location"]
        cols = np.arange(c0, c1)[None, :]
        keep = (cols >= lo[r0:r1, None]) & (cols < hi[r0:r1, None])
        return np.where(keep, block, np.float32(0))

    return data.map_blocks(mask, dtype=data.dtype)


def graph_tasks(tile: Tile, items: dict[str, list[dict]], *, bands, chunk: int, window: int = 512,
                overlap: int = 64) -> int:
    """Tasks in the graph one tile builds (cube, predict, core, Zarr writes); nothing is computed."""
    import glacierxr as gx
    from glacierxr.predict import predict

    model = gx.models.create("band-ratio", bands=list(bands))
    cube = gx.open_cube(items, grid=tile.grid, chunks=chunk)
    prob = predict(cube, model, window=window, overlap=overlap, chunks=chunk)
    core = prob.isel(core_slices(tile)).chunk({"y": chunk, "x": chunk})
    return len(core.data.__dask_graph__()) + int(np.prod(core.data.numblocks))


def core_slices(tile: Tile) -> dict[str, slice]:
    """Where the core lies in the tile's grid (core plus margin)."""
    m, (rows, cols) = tile.margin_px, tile.core_shape
    return {"y": slice(m, m + rows), "x": slice(m, m + cols)}


def _threads() -> int:
    try:
        from distributed import get_worker

        return max(int(get_worker().state.nthreads), 1)
    except (ImportError, ValueError, AttributeError):
        return os.cpu_count() or 1


def _model(job: TileJob):
    from glacierxr.predict import ModelHandle

    return job.model.model() if isinstance(job.model, ModelHandle) else job.model


def run_tile(job: TileJob) -> dict:
    """Run one tile (see the module docstring) and return its ledger entry.

    Idempotent: a tile whose ``done.json`` exists is not run again; a tile interrupted part
    way resumes its Zarr and rewrites its other outputs.
    """
    folder = tile_dir(job.run_dir, job.tile.id)
    ledger = folder / "done.json"
    if ledger.exists():
        return json.loads(ledger.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    with _tile_lock(folder):
        if ledger.exists():  # another process (e.g. a worker orphaned by a killed run) finished it meanwhile
            return json.loads(ledger.read_text())
        with dask.config.set(scheduler="threads", num_workers=_threads()):
            entry = _run(job, folder)
        write_atomic(ledger, lambda p: p.write_text(json.dumps(entry, indent=1, sort_keys=True)))
    return entry


@contextlib.contextmanager
def _tile_lock(folder: Path) -> Iterator[None]:
    """One process at a time on a tile: an exclusive ``flock`` on ``<tile>/.lock``.

    After a kill -9 of the command, a worker process can outlive it and still be running a
    tile when the resumed run starts the same tile; the lock makes the second wait, then find
    the tile done. The kernel releases the lock when its holder dies.
    """
    import fcntl

    with (folder / ".lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(job: TileJob, folder: Path) -> dict:
    import geopandas as gpd
    import pandas as pd
    import xarray as xr

    import glacierxr as gx
    from glacierxr.predict import predict
    from glacierxr.store import store_status, to_zarr
    from glacierxr.vectorize import raster_pieces

    tile, timings = job.tile, {}
    model = _model(job)
    t = time.perf_counter()
    cube = gx.open_cube(job.items, grid=tile.grid, chunks=job.chunk, reader=job.reader)
    prob = predict(cube, model, window=job.window, overlap=job.overlap, chunks=job.chunk,
                   batch_size=job.batch_size, device=job.device)
    core = prob.isel(core_slices(tile)).chunk({"y": job.chunk, "x": job.chunk})
    store = folder / "probability.zarr"
    if not store_status(store)["complete"]:
        to_zarr(core, store)
    timings["predict_s"] = time.perf_counter() - t

    t = time.perf_counter()
    written = xr.open_zarr(store, decode_coords="all")["glacier_probability"]
    data = written.data
    straddles = tile.straddles_zone_line
    if straddles:
        data = _owned(data, *strip_columns(tile))
    pieces = raster_pieces(data, origin=tile.origin_px, threshold=job.threshold)
    res = tile.resolution
    geoms_px = np.array([p[0] for p in pieces], dtype=object)
    edge = np.array([p[3] for p in pieces], dtype=bool)
    if straddles and len(pieces):
        west, _, east, _ = tile.strip
        b = shapely.bounds(lattice_to_lonlat(geoms_px, tile.epsg, res))
        edge |= (b[:, 0] <= west) | (b[:, 2] >= east)
    sums = np.array([p[1] for p in pieces], dtype=np.float64)
    counts = np.array([p[2] for p in pieces], dtype=np.float64)
    timings["outlines_s"] = time.perf_counter() - t

    t = time.perf_counter()
    border = pd.DataFrame({"wkb": shapely.to_wkb(geoms_px[edge]) if edge.any() else [], "sum": sums[edge],
                           "count": counts[edge], "tile_id": tile.id})
    write_atomic(folder / "pieces.parquet", lambda p: border.to_parquet(p, index=False))
    whole = finish_glaciers(geoms_px[~edge], sums[~edge], counts[~edge], epsg=tile.epsg, resolution=res,
                            min_area_km2=job.min_area_km2, min_hole_km2=job.min_hole_km2)
    if len(whole):
        whole = with_attributes(whole, cube["elevation"].compute(), date=job.date, dem_source=job.dem_source,
                                split=job.split)
    whole["tile_id"] = tile.id
    write_atomic(folder / "glaciers.parquet", lambda p: gpd.GeoDataFrame(whole, geometry="geometry").to_parquet(p))
    timings["inventory_s"] = time.perf_counter() - t
    if job.preview_px:
        t = time.perf_counter()
        write_atomic(folder / "preview.npz", lambda p: _write_preview(p, job))
        timings["preview_s"] = time.perf_counter() - t
    return {"tile": tile.id, "status": "done", "glaciers": int(len(whole)), "pieces": int(edge.sum()),
            "items": {k: [it["id"] for it in v] for k, v in job.items.items()},
            "timings_s": {k: round(v, 3) for k, v in timings.items()}}


def with_attributes(glaciers, dem, *, date: str | None, dem_source: str | None, split: bool = False):
    """RGI-style attributes from ``dem``, keeping the polygons' mean probability from the tile's pixels.

    With ``split`` the ice complexes are first split into glaciers at their ice divides on the
    same DEM; every glacier keeps its complex's mean probability and gets its ``complex_id``.
    """
    from glacierxr.inventory import inventory

    if split:
        from glacierxr.divides import split_glaciers

        glaciers = split_glaciers(glaciers, dem)
    mean = glaciers["mean_probability"].to_numpy()
    out = inventory(glaciers.drop(columns="mean_probability"), dem, date=date, dem_source=dem_source)
    out["mean_probability"] = mean
    return out


def finish_glaciers(geoms_px, sums, counts, *, epsg: int, resolution: float, min_area_km2: float,
                    min_hole_km2: float):
    """Whole glaciers in lattice pixels -> a lon/lat GeoDataFrame: holes filled, geodesic area filter.

    The one path every glacier takes to the output, whether it came whole from a tile or was
    merged from pieces: so a glacier is identical whatever the tiling.
    """
    import geopandas as gpd

    min_hole_px = min_hole_km2 * 1e6 / resolution**2
    filled = np.array([fill_holes_px(g, min_hole_px) for g in geoms_px], dtype=object)
    ll = lattice_to_lonlat(filled, epsg, resolution) if len(filled) else np.array([], dtype=object)
    area = geodesic_km2(ll)
    keep = area >= min_area_km2
    mean = np.asarray(sums, dtype=np.float64)[keep] / np.maximum(np.asarray(counts, dtype=np.float64)[keep], 1)
    return gpd.GeoDataFrame({"mean_probability": mean.astype("float32")}, geometry=list(ll[keep]), crs="EPSG:4326")
