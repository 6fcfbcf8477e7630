"""Regional inventory production: plan -> tiles (on the cluster) -> merge -> outputs.

:func:`run_inventory` (``glacierxr inventory``) runs a region of any size:

1. **Plan** (:func:`glacierxr.plan.plan_region`): one paged search for the AOI, the fixed tiling
   of :mod:`glacierxr.tiles` laid over it (each tile on its own UTM zone's grid), items per tile.
   The driver holds this plan, never a region-sized graph.
2. **Tiles** (:func:`glacierxr.tilework.run_tile`): one Dask task per tile that builds and
   computes the tile's own small graph on its worker (cube -> predict -> Zarr of the core ->
   polygons -> the ice masses it holds whole, split into glaciers at their ice divides on the
   tile's DEM (:mod:`glacierxr.divides`) -> their attributes). At most ``max_in_flight``
   tiles are submitted at a time; on the threaded scheduler tiles run one after the other.
3. **Merge** (:mod:`glacierxr.merge`): pieces of glaciers cut by tile borders or zone lines are
   joined, then split and measured on small DEM cubes on the same grid, in parallel.
4. **Outputs** in ``out``: ``outlines.parquet`` / ``outlines.gpkg`` (one polygon per glacier,
   EPSG:4326 as in RGI, with the RGI-style attributes and the ``complex_id`` of its ice mass),
   ``complexes.parquet`` (the ice masses, RGI7C-like), ``inventory.csv``, ``quicklook.png``,
   ``tiles/`` (per tile: ``probability.zarr`` of its core, ``glaciers.parquet``,
   ``pieces.parquet`` and the ledger entry ``done.json``; ``tiles/collection.json`` +
   ``items.ndjson`` catalogue them as STAC, :func:`open_mosaic` opens one mosaic per zone),
   ``plan/`` (the searched items and tiles) and ``manifest.json`` (per-tile status, items and
   timings; versions, parameters, model checksum, km², km²/s).

Resuming: a tile is done when its ``done.json`` exists, written atomically after its outputs.
A run killed at any moment (``kill -9`` of the command and its workers included) and started
again with ``resume=True`` reuses the saved plan (no new search: the same items), runs only the
tiles without a ledger entry (a half-written tile Zarr resumes chunk by chunk) and derives the
merged outputs deterministically, written atomically: the outputs equal an uninterrupted run's.
A folder holding an earlier run is never touched without ``resume`` or ``overwrite``; ``resume``
with different parameters is refused.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import xarray as xr

from glacierxr.errors import GridError, InvalidArgumentError, StoreExistsError
from glacierxr.geo import validate_bbox
from glacierxr.models.inputs import check_resolution, model_resolution
from glacierxr.models.resolve import resolve
from glacierxr.predict import model_token
from glacierxr.search import validate_datetime
from glacierxr.tiling import check_tiling

__all__ = ["run_inventory", "sensors_for", "open_mosaic"]

_PARAMS = "run.json"
_PACKAGES = ("glacierxr", "xarray", "dask", "distributed", "stackstac", "pystac-client", "rasterio", "zarr",
             "geopandas", "shapely", "torch", "numpy")


def sensors_for(bands: Sequence[str]) -> tuple[str, ...]:
    """The sensors a model's bands need, plus the DEM (the inventory needs elevations)."""
    s2 = {"B02", "B03", "B04", "B08", "B11", "NDVI", "NDSI", "NDWI"}
    wanted = ["sentinel-2"] if s2 & set(bands) else []
    if {"VV", "VH"} & set(bands):
        wanted.append("sentinel-1")
    return (*wanted, "dem")


def _versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def _prepare_folder(out: Path, params: dict, *, resume: bool, overwrite: bool, check_only: bool = False) -> None:
    """Refuse a folder holding another run; with ``check_only`` nothing is removed or written."""
    if resume and overwrite:
        raise InvalidArgumentError("Pass either resume or overwrite, not both.")
    if out.exists() and not out.is_dir():
        raise StoreExistsError(f"--out {out} is a file, not a folder; choose another --out.")
    if out.exists() and any(p.name != ".partial" for p in out.iterdir()):  # a kill may leave only .partial/
        if overwrite:
            if not check_only:
                shutil.rmtree(out)
        elif resume:
            saved = out / _PARAMS
            if not saved.exists():
                raise StoreExistsError(f"{out} holds no glacierxr run to resume; choose another folder or pass overwrite.")
            before = json.loads(saved.read_text())
            if before != params:
                changed = sorted(k for k in set(before) | set(params) if before.get(k) != params.get(k))
                raise InvalidArgumentError(
                    f"{out} holds a run with other parameters ({', '.join(changed)}); resume it with the same "
                    "parameters, or pass overwrite to start again."
                )
        else:
            raise StoreExistsError(
                f"{out} already exists and is not empty; pass resume=True to finish the run in it, "
                "overwrite=True to replace it, or choose another out folder."
            )
    if check_only:
        return
    out.mkdir(parents=True, exist_ok=True)
    _atomic(out / _PARAMS, lambda p: p.write_text(json.dumps(params, indent=1, sort_keys=True)))


def _atomic(path: Path, write) -> None:
    """Write a file with ``write(tmp_path)`` and rename it into place: a kill never leaves half a file."""
    tmp = path.parent / ".partial" / path.name  # same name: a GeoPackage's layer is named after it
    tmp.parent.mkdir(exist_ok=True)
    tmp.unlink(missing_ok=True)
    write(tmp)
    os.replace(tmp, path)


@contextlib.contextmanager
def _dask_client(workers: int | None, scheduler: str | None, echo) -> Iterator[object | None]:
    """Threads, a LocalCluster or a running scheduler (options checked by :func:`_check_options`)."""
    if workers is None and scheduler is None:
        yield None
        return
    from distributed import Client, LocalCluster

    if workers is not None:
        with _teardown_quietly(), \
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            echo(f"dask       LocalCluster({workers} workers x 1 thread), dashboard {client.dashboard_link}")
            try:
                yield client
            finally:
                # the shutdown is reported by loggers in this process and in every worker process
                # (a last heartbeat can still meet a closing scheduler): silence them all, then retire
                # the workers before the scheduler goes
                _quiet(_TEARDOWN_LOGGERS)
                with contextlib.suppress(Exception):
                    client.run(_quiet, _TEARDOWN_LOGGERS)
                with contextlib.suppress(Exception):
                    client.retire_workers(list(client.scheduler_info()["workers"]), close_workers=True, remove=True)
    else:
        with Client(scheduler) as client:
            echo(f"dask       {scheduler}, dashboard {client.dashboard_link}")
            yield client


#: distributed's loggers that report a LocalCluster's own shutdown: "connection closed" at INFO and,
#: when a nanny's worker exits while the nanny closes, a CancelledError traceback at ERROR. Both
#: are distributed's bookkeeping after the run's results are in; they are silenced only then.
_TEARDOWN_LOGGERS = ("distributed.core", "distributed.nanny", "distributed.worker", "distributed.scheduler")


def _quiet(names) -> None:
    import logging

    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)


@contextlib.contextmanager
def _teardown_quietly() -> Iterator[None]:
    """Restore the levels of :data:`_TEARDOWN_LOGGERS` once the cluster has closed."""
    import logging

    levels = {name: logging.getLogger(name).level for name in _TEARDOWN_LOGGERS}
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _check_options(model, *, chunk, window, overlap, max_cloud, min_area_km2, workers, scheduler, max_in_flight) -> None:
    """Validate the run's options before anything is searched, read or written."""
    if isinstance(chunk, bool) or not isinstance(chunk, int | np.integer) or chunk <= 0:
        raise GridError(f"chunk={chunk!r} must be a positive number of pixels, e.g. 2048.")
    check_tiling(window, overlap, model.output_stride)
    if max_cloud is not None and not (0 <= float(max_cloud) <= 100):
        raise InvalidArgumentError(f"max_cloud={max_cloud} must be a percentage in [0, 100], e.g. 20.")
    if isinstance(min_area_km2, bool) or not (isinstance(min_area_km2, numbers.Real) and np.isfinite(min_area_km2)
                                              and min_area_km2 >= 0):
        raise InvalidArgumentError(f"min_area_km2={min_area_km2!r} must be a non-negative area in km², e.g. 0.05.")
    if workers is not None and scheduler is not None:
        raise InvalidArgumentError("Pass either workers (start a LocalCluster) or scheduler (connect), not both.")
    if workers is not None and workers < 1:
        raise InvalidArgumentError(f"workers={workers} must be at least 1 (or leave it out for threads).")
    if max_in_flight is not None and (isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int)
                                      or max_in_flight < 1):
        raise InvalidArgumentError(f"max_in_flight={max_in_flight!r} must be a positive number of tiles.")


class _Progress:
    """Tiles and km² done / total, km²/s and ETA on one live line (nothing with ``quiet``)."""

    def __init__(self, total_tiles: int, total_km2: float, done_tiles: int, done_km2: float, quiet: bool) -> None:
        self.quiet, self.t0, self.start_km2 = quiet, time.perf_counter(), done_km2
        self.tiles, self.km2 = done_tiles, done_km2
        self.total_tiles, self.total_km2 = total_tiles, total_km2
        self._bar = None
        if not quiet:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("tiles"), BarColumn(), TextColumn("{task.fields[tiles]}"),
                                 TextColumn("{task.fields[km2]}"), TextColumn("{task.fields[rate]}"),
                                 TimeRemainingColumn(), transient=False)
            self._task = self._bar.add_task("tiles", total=total_km2, completed=done_km2, tiles="", km2="", rate="")
            self._update()

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._update()
            self._bar.stop()

    @property
    def rate(self) -> float:
        return (self.km2 - self.start_km2) / max(time.perf_counter() - self.t0, 1e-9)

    def _update(self) -> None:
        self._bar.update(self._task, completed=self.km2, tiles=f"{self.tiles}/{self.total_tiles}",
                         km2=f"{self.km2:,.0f}/{self.total_km2:,.0f} km²", rate=f"{self.rate:,.2f} km²/s")

    def advance(self, km2: float) -> None:
        self.tiles += 1
        self.km2 += km2
        if self._bar is not None:
            self._update()


def _aoi_param(bbox, aoi) -> object:
    if (bbox is None) == (aoi is None):
        raise InvalidArgumentError("Pass the region as either bbox (--bbox W S E N) or aoi (--aoi FILE), not both or neither.")
    if bbox is not None:
        return [float(v) for v in validate_bbox(bbox)]
    if isinstance(aoi, str | Path):
        return str(Path(aoi).resolve())
    import shapely

    from glacierxr.tiles import read_aoi

    return shapely.to_wkt(shapely.union_all(read_aoi(aoi)), rounding_precision=7)


def _save_plan(out: Path, plan) -> None:
    items_dir = out / "plan"
    items_dir.mkdir(exist_ok=True)
    for sensor, items in plan.items.items():
        _atomic(items_dir / f"{sensor}.ndjson",
                lambda p, items=items: p.write_text("".join(json.dumps(d) + "\n" for d in items.values())))
    _atomic(items_dir / "plan.json", lambda p: p.write_text(plan.to_json()))


def _load_plan(out: Path, aoi_value, params: dict):
    """The plan saved by the interrupted run: a resumed run never searches again (same items, same outputs)."""
    import shapely

    from glacierxr.plan import RegionPlan, TilePlan
    from glacierxr.tiles import Tile, read_aoi

    folder = out / "plan"
    if not (folder / "plan.json").exists():
        return None
    saved = json.loads((folder / "plan.json").read_text())
    items = {}
    for path in sorted(folder.glob("*.ndjson")):
        items[path.stem] = {d["id"]: d for d in map(json.loads, path.read_text().splitlines())}
    tiles = [TilePlan(Tile.from_dict(t), {k: tuple(v) for k, v in t["items"].items()}, t["chunks"], t["tasks"], t["km2"])
             for t in saved["tile_list"]]
    aoi = read_aoi(aoi_value if not isinstance(aoi_value, str) or Path(aoi_value).exists() else shapely.from_wkt(aoi_value))
    return RegionPlan(params["stac"], params["datetime"], saved["tile_km"], saved["margin_km"], saved["resolution_m"],
                      params["chunk"], tuple(items), params["max_cloud"], aoi, tiles, items, saved["search_s"],
                      saved["plan_s"])


def _run_tiles(jobs: list, client, progress: _Progress, km2: dict[str, float], max_in_flight: int) -> dict[str, dict]:
    """Run the tiles not yet done: in this process one after the other (threads inside each), or
    as Dask futures on the cluster with at most ``max_in_flight`` tiles submitted at a time."""
    from glacierxr.tilework import run_tile

    entries: dict[str, dict] = {}
    if client is None:
        for job in jobs:
            entries[job.tile.id] = run_tile(job)
            progress.advance(km2[job.tile.id])
        return entries
    import uuid

    from distributed import as_completed

    # keys unique to this invocation: a worker orphaned by a killed run that reconnects to a new
    # scheduler on a reused port must never have its stale result taken for this run's tile
    run = uuid.uuid4().hex[:8]
    pending = iter(jobs)
    futures = as_completed()
    for job in [j for _, j in zip(range(max_in_flight), pending, strict=False)]:
        futures.add(client.submit(run_tile, job, key=f"tile-{job.tile.id}-{run}", pure=False, retries=2))
    for future in futures:
        entry = future.result()  # a tile that keeps failing raises here, naming its cause
        entries[entry["tile"]] = entry
        progress.advance(km2[entry["tile"]])
        future.release()
        job = next(pending, None)
        if job is not None:
            futures.add(client.submit(run_tile, job, key=f"tile-{job.tile.id}-{run}", pure=False, retries=2))
    return entries


def _merged_attributes(merged, plan, client, *, date, dem_source, reader, split: bool, batch: int = 64):
    """Attributes of the merged glaciers, in batches: on the cluster when there is one."""
    import geopandas as gpd
    import pandas as pd

    from glacierxr.merge import attributes_of

    dem = list(plan.items.get("dem", {}).values())
    if not len(merged):
        return merged
    parts = [merged.iloc[i : i + batch] for i in range(0, len(merged), batch)]
    kwargs = dict(resolution=plan.resolution, date=date, dem_source=dem_source, reader=reader, split=split)
    if client is None:
        done = [attributes_of(p, dem, **kwargs) for p in parts]
    else:
        done = client.gather([client.submit(attributes_of, p, dem, pure=False, **kwargs) for p in parts])
    return gpd.GeoDataFrame(pd.concat(done), geometry="geometry", crs="EPSG:4326")


def _final_order(gdf):
    """Deterministic rows: largest first, then north to south, west to east; canonical geometries."""
    import shapely

    gdf = gdf.assign(geometry=shapely.normalize(gdf.geometry.values))
    gdf = gdf.sort_values(["area_km2", "cenlat", "cenlon"], ascending=[False, False, True], kind="mergesort")
    return gdf.reset_index(drop=True)


def _tile_catalog(out: Path, plan, entries: dict[str, dict]) -> None:
    """A STAC collection of the tile stores (``tiles/collection.json`` + ``tiles/items.ndjson``).

    Why STAC and not a GDAL VRT: the tiles are Zarr v3 stores, which GDAL reads only from 3.8 on
    and a VRT cannot mix zones; a STAC collection names every tile's store, zone, bounds and
    footprint, is served by ``glacierxr stac serve``, and :func:`open_mosaic` (or any STAC
    client) turns it back into one lazy mosaic per zone.
    """
    import shapely

    lines = []
    for tp in plan.tiles:
        t = tp.tile
        if entries.get(t.id, {}).get("status") != "done":
            continue
        fp = t.footprint
        lines.append(json.dumps({
            "type": "Feature", "stac_version": "1.0.0", "id": t.id, "collection": "glacierxr-tiles",
            "geometry": shapely.geometry.mapping(fp), "bbox": list(fp.bounds),
            "properties": {"datetime": None, "start_datetime": plan.datetime.split("/")[0] + "T00:00:00Z",
                           "end_datetime": plan.datetime.split("/")[-1] + "T23:59:59Z", "proj:code": f"EPSG:{t.epsg}",
                           "proj:bbox": list(t.core_bounds), "gsd": t.resolution,
                           "glacierxr:glaciers": entries[t.id].get("glaciers", 0)},
            "assets": {"probability": {"href": f"./{t.id}/probability.zarr", "type": "application/vnd.zarr",
                                       "roles": ["data"]},
                       "glaciers": {"href": f"./{t.id}/glaciers.parquet", "type": "application/x-parquet",
                                    "roles": ["data"]}},
            "links": [], "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
        }))
    coll = {"type": "Collection", "stac_version": "1.0.0", "id": "glacierxr-tiles", "license": "proprietary",
            "description": "Glacier probability per production tile (Zarr v3, on each tile's UTM zone grid).",
            "extent": {"spatial": {"bbox": [list(shapely.total_bounds(plan.aoi))]},
                       "temporal": {"interval": [[None, None]]}}, "links": []}
    _atomic(out / "tiles" / "items.ndjson", lambda p: p.write_text("\n".join(lines) + ("\n" if lines else "")))
    _atomic(out / "tiles" / "collection.json", lambda p: p.write_text(json.dumps(coll, indent=1)))


def open_mosaic(run: str | Path, *, epsg: int | None = None) -> dict[int, xr.DataArray]:
    """The glacier probability of a regional run as one lazy mosaic per UTM zone.

    Parameters
    ----------
    run
        The run's output folder (``glacierxr inventory --out``).
    epsg
        Only this zone.

    Returns
    -------
    dict[int, xarray.DataArray]
        EPSG code -> Dask-backed ``glacier_probability`` on that zone's grid (the tile cores put
        side by side; NaN where no tile of that zone ran). The CRS is attached.
    """
    import rioxarray  # noqa: F401

    catalog = Path(run) / "tiles" / "items.ndjson"
    if not catalog.exists():
        raise FileNotFoundError(f"{catalog} does not exist: is {run} the --out folder of a finished regional run?")
    by_zone: dict[int, list[xr.DataArray]] = {}
    for line in catalog.read_text().splitlines():
        item = json.loads(line)
        code = int(item["properties"]["proj:code"].split(":")[1])
        if epsg is not None and code != epsg:
            continue
        store = catalog.parent / item["assets"]["probability"]["href"]
        arr = xr.open_zarr(store, decode_coords="all")["glacier_probability"]
        by_zone.setdefault(code, []).append(arr.drop_vars("spatial_ref", errors="ignore"))
    out = {}
    for code, arrays in sorted(by_zone.items()):
        mosaic = xr.combine_by_coords([a.to_dataset() for a in arrays], combine_attrs="drop_conflicts", join="outer")
        out[code] = mosaic["glacier_probability"].rio.write_crs(f"EPSG:{code}")
    return out


def run_inventory(
    stac: str,
    *,
    datetime: str,
    out: str | Path,
    bbox: Sequence[float] | None = None,
    aoi: object = None,
    buffer_km: float = 0.0,
    model="band-ratio",
    workers: int | None = None,
    scheduler: str | None = None,
    tile_km: float = 100.0,
    margin_km: float = 2.0,
    resolution: float | None = None,
    chunk: int = 2048,
    window: int = 512,
    overlap: int = 64,
    max_cloud: float | None = None,
    min_area_km2: float = 0.05,
    split: bool = True,
    max_in_flight: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    echo=print,
    reader: type | None = None,
    quicklook: bool = True,
    tile: int | None = None,
) -> dict:
    """Produce the glacier inventory of a region, tile by tile, end to end; see the module docstring.

    Parameters
    ----------
    stac
        STAC API URL or provider preset (``earth-search``, ``planetary-computer``).
    datetime
        Date window, e.g. ``"2023-07-15/2023-09-30"``.
    out
        Output folder.
    bbox, aoi
        The region: a ``(west, south, east, north)`` box in degrees, or an AOI (a vector file
        such as RGI outlines or a mountain-range polygon, a geometry or a GeoDataFrame); only
        tiles meeting it run.
    buffer_km
        Grow the AOI by this distance.
    model
        ``"band-ratio"``, a checkpoint path, or a glacierxr model.
    workers, scheduler
        Start a LocalCluster of ``workers`` processes, or connect to a running scheduler
        (dask-jobqueue, Kubernetes; the output folder must be on a filesystem the workers share);
        neither: tiles run one after the other in this process on Dask's threaded scheduler. In
        a script, call it under ``if __name__ == "__main__":``.
    tile_km, margin_km
        Production tiles (see :mod:`glacierxr.tiles`): side in km (nesting in the 100 km
        pattern) and the margin predicted around each core.
    resolution
        Pixel size in metres; by default the one the model was trained at (10 m for the band
        ratio and for checkpoints that do not record it). A model trained at another pixel size
        is refused (:class:`~glacierxr.errors.ModelInputError`).
    chunk
        Chunk size in pixels inside a tile.
    window, overlap
        Prediction windows (``tile=`` is a deprecated alias of ``window=``).
    max_cloud
        Maximum scene cloud cover (percent).
    min_area_km2
        Smallest ice mass kept (geodesic area).
    split
        Split the ice masses into glaciers at their ice divides on the DEM
        (:func:`glacierxr.divides.split_glaciers`): ``outlines.parquet`` then lists glaciers
        (RGI7G-like, with ``complex_id``) and ``complexes.parquet`` the ice masses (RGI7C-like).
        Without it both list the ice masses.
    max_in_flight
        Tiles submitted to the cluster at a time (default: twice the worker threads); bounds
        the driver's and the scheduler's memory whatever the size of the AOI.
    resume, overwrite
        Continue an interrupted run in ``out`` (only unfinished tiles run), or replace it.
    quiet
        No progress bar and no messages.
    echo
        Where messages go (``print`` by default).
    reader
        stackstac ``Reader`` class for every asset (a dry run passes one that generates pixels).
    quicklook
        Write ``quicklook.png`` of the whole AOI.

    Returns
    -------
    dict
        The manifest (also written to ``out/manifest.json``).

    Raises
    ------
    StoreExistsError
        When ``out`` holds something and neither ``resume`` nor ``overwrite`` is given.
    InvalidArgumentError
        On resuming with other parameters, or invalid options.
    GlacierxrError
        Any other input error (region, dates, model, windows, tiles, search, items) is raised
        before ``out`` is created, changed or, with ``overwrite``, removed.
    """
    import geopandas as gpd
    import pandas as pd

    from glacierxr.plan import plan_region
    from glacierxr.predict import handle_for
    from glacierxr.tiles import check_tile_km
    from glacierxr.tilework import TileJob, tile_dir

    if tile is not None:
        import warnings

        if window != 512:
            raise InvalidArgumentError("Pass the prediction window as window= only (tile= is its deprecated name).")
        warnings.warn("run_inventory(tile=...) is deprecated; use window= (a tile is now a production tile).",
                      FutureWarning, stacklevel=2)
        window = tile
    say = (lambda *_: None) if quiet else echo
    out = Path(out)
    t_start = time.perf_counter()
    the_model = resolve(model)
    if resolution is None:
        resolution = model_resolution(the_model)
    check_resolution(the_model, resolution)
    aoi_value = _aoi_param(bbox, aoi)
    params = {
        "stac": stac, "aoi": aoi_value, "buffer_km": float(buffer_km), "datetime": datetime, "model": the_model.arch,
        "model_checksum": model_token(the_model), "tile_km": float(tile_km), "margin_km": float(margin_km),
        "resolution": float(resolution), "chunk": chunk, "window": window, "overlap": overlap,
        "max_cloud": max_cloud, "min_area_km2": min_area_km2, "split": bool(split),
    }
    validate_datetime(datetime)
    _check_options(the_model, chunk=chunk, window=window, overlap=overlap, max_cloud=max_cloud,
                   min_area_km2=min_area_km2, workers=workers, scheduler=scheduler, max_in_flight=max_in_flight)
    check_tile_km(tile_km, resolution, margin_km)
    # refusals first, then everything that can fail on the inputs (search, items), and only then
    # is the folder touched: a failing run never removes or half-writes an earlier one
    _prepare_folder(out, params, resume=resume, overwrite=overwrite, check_only=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    plan = _load_plan(out, aoi_value, params) if resume else None
    if plan is None:
        region = bbox if bbox is not None else aoi
        plan = plan_region(stac, aoi=region, datetime=datetime, tile_km=tile_km, margin_km=margin_km,
                           buffer_km=buffer_km, resolution=resolution, chunk=chunk,
                           sensors=sensors_for(the_model.bands), max_cloud=max_cloud, bands=the_model.bands)
    timings["plan_s"] = time.perf_counter() - t
    summary = plan.summary()
    say("search     " + ", ".join(f"{k}: {v} items" for k, v in summary["items_per_sensor"].items()))
    say(f"plan       {summary['tiles']} tiles of {tile_km:g} km on EPSG {', '.join(map(str, summary['epsg']))}, "
        f"{summary['km2']:,.1f} km², at most {summary['max_tasks_per_tile']:,} tasks per tile")
    _prepare_folder(out, params, resume=resume, overwrite=overwrite)
    if not (out / "plan" / "plan.json").exists():
        _save_plan(out, plan)
    handle = handle_for(the_model, cache_dir=out / "model")
    date = plan_date(plan)
    dem_source = _dem_source(plan.items)
    jobs = [TileJob(tp.tile, plan.items_for(tp), handle, str(out), window=window, overlap=overlap, chunk=chunk,
                    min_area_km2=min_area_km2, date=date, dem_source=dem_source, reader=reader,
                    preview_px=256 if quicklook else 0, split=bool(split)) for tp in plan.tiles]
    km2 = {tp.tile.id: tp.km2 for tp in plan.tiles}
    done = {j.tile.id for j in jobs if (tile_dir(out, j.tile.id) / "done.json").exists()}
    entries = {i: json.loads((tile_dir(out, i) / "done.json").read_text()) for i in sorted(done)}
    todo = [j for j in jobs if j.tile.id not in done]
    if done:
        say(f"resume     {len(done)} of {len(jobs)} tiles already done")
    with _dask_client(workers, scheduler, say) as client:
        in_flight = max_in_flight or (2 * sum(client.nthreads().values()) if client is not None else 1)
        t = time.perf_counter()
        with _Progress(len(jobs), plan.km2, len(done), sum(km2[i] for i in done), quiet) as progress:
            entries.update(_run_tiles(todo, client, progress, km2, in_flight))
        timings["tiles_s"] = time.perf_counter() - t
        t = time.perf_counter()
        from glacierxr.merge import merge_pieces

        merged = merge_pieces(out, [tp.tile for tp in plan.tiles], min_area_km2=min_area_km2, min_hole_km2=0.01)
        timings["merge_s"] = time.perf_counter() - t
        t = time.perf_counter()
        merged = _merged_attributes(merged, plan, client, date=date, dem_source=dem_source, reader=reader,
                                    split=bool(split))
        timings["merge_attributes_s"] = time.perf_counter() - t
    whole = [gpd.read_parquet(tile_dir(out, i) / "glaciers.parquet") for i in sorted(entries)]
    whole = [w for w in whole if len(w)]
    frames = [*whole, merged.assign(tile_id="merged")] if len(merged) else whole
    if frames:
        inv = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")
        inv = _final_order(inv.drop(columns=["zone_epsg"], errors="ignore"))
    else:
        inv = gpd.GeoDataFrame({"area_km2": []}, geometry=[], crs="EPSG:4326")
    complexes = _complexes(inv)
    import glacierxr as gx

    t = time.perf_counter()
    for name in ("outlines.parquet", "outlines.gpkg"):  # the driver follows the suffix
        _atomic(out / name, lambda p: gx.write_inventory(inv, p))
    _atomic(out / "complexes.parquet", lambda p: complexes.to_parquet(p))
    _atomic(out / "inventory.csv", lambda p: pd.DataFrame(inv.drop(columns="geometry")).to_csv(p, index=False))
    _tile_catalog(out, plan, entries)
    if quicklook:
        _atomic(out / "quicklook.png", lambda p: _quicklook(plan, out, p, inv))
    timings["outputs_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t_start
    tiles_s = timings["tiles_s"]
    manifest = {
        "parameters": params,
        "plan": summary,
        "items": {k: sorted(v) for k, v in plan.items.items()},
        "versions": _versions(),
        "tiles": {i: {k: v for k, v in e.items() if k != "tile"} for i, e in sorted(entries.items())},
        "km2_processed": plan.km2,
        "km2_per_s": plan.km2 / timings["total_s"],
        "tiles_km2_per_s": sum(km2[j.tile.id] for j in todo) / tiles_s if todo and tiles_s > 0 else None,
        "glaciers": len(inv),
        "complexes": len(complexes),
        "merged_glaciers": int(len(merged)),
        "glacier_area_km2": float(inv["area_km2"].sum()) if len(inv) else 0.0,
        "timings_s": timings,
        "outputs": ["tiles/", "outlines.parquet", "outlines.gpkg", "complexes.parquet", "inventory.csv",
                    *(["quicklook.png"] if quicklook else []), "manifest.json"],
    }
    _atomic(out / "manifest.json", lambda p: p.write_text(json.dumps(manifest, indent=1, default=str)))
    shutil.rmtree(out / ".partial", ignore_errors=True)
    say(f"inventory  {len(inv)} glaciers in {len(complexes)} ice complexes ({len(merged)} through the merge: "
        "cut by a tile edge or zone line), "
        f"{manifest['glacier_area_km2']:.2f} km² "
        f"-> {out}")
    return manifest


def _complexes(inv):
    """``complexes.parquet``: the ice masses of the glaciers, largest first (RGI7C-like)."""
    from glacierxr.divides import _complex_ids, complexes_of

    if "complex_id" not in inv:  # not split: every glacier is its own complex
        inv = inv.assign(complex_id=_complex_ids(inv.geometry.to_numpy(), inv.crs))
    cx = complexes_of(inv)
    if len(cx) and "area_km2" in cx:
        cx = cx.sort_values(["area_km2", "complex_id"], ascending=[False, True], kind="mergesort")
    return cx.reset_index(drop=True)


def plan_date(plan) -> str | None:
    """``src_date`` of the outlines: the date of the newest scene the run uses (not the DEM).

    The outlines come from a composite of the scenes, so they show the ice as of the newest one
    at the latest; the end of the date window stands in when no scene carries a date.
    """
    import pandas as pd

    dates = [d.get("properties", {}).get("datetime") or d.get("properties", {}).get("end_datetime")
             for sensor, by_id in plan.items.items() if sensor != "dem" for d in by_id.values()]
    dates = [t for t in dates if t]
    if dates:
        return max(pd.Timestamp(t) for t in dates).strftime("%Y-%m-%d")
    return plan.datetime.split("/")[-1] if "/" in plan.datetime else plan.datetime or None


def _quicklook(plan, out: Path, path: Path, outlines, max_size: int = 1024) -> None:
    """The whole AOI's quicklook, assembled from the tiles' previews on a lon/lat canvas, with the outlines.

    Each tile wrote a small true-colour preview of its core (:mod:`glacierxr.tilework`), so the
    driver never builds a graph over the whole AOI's items: it only places previews.
    """
    import rioxarray  # noqa: F401
    import shapely
    from pyproj import Transformer

    from glacierxr.quicklook import quicklook
    from glacierxr.tilework import tile_dir

    w, s, e, n = shapely.total_bounds(np.array([t.tile.footprint for t in plan.tiles]))
    kx = np.cos(np.radians((s + n) / 2))
    step = max((e - w) * kx, n - s) / max_size
    lon = w + (np.arange(max(int((e - w) * kx / step), 1)) + 0.5) * step / kx
    lat = n - (np.arange(max(int((n - s) / step), 1)) + 0.5) * step
    canvas = np.full((3, lat.size, lon.size), np.nan, np.float32)
    for tp in plan.tiles:
        file = tile_dir(out, tp.tile.id) / "preview.npz"
        if not file.exists():
            continue
        with np.load(file) as z:
            rgb, (x0, y0, x1, y1), epsg = z["rgb"].astype(np.float32), z["bounds"], int(z["epsg"])
        fw, fs, fe, fn = tp.tile.footprint.bounds
        cols = np.flatnonzero((lon >= fw) & (lon < fe))
        rows = np.flatnonzero((lat >= fs) & (lat < fn))
        if not len(cols) or not len(rows):
            continue
        west, _, east, _ = tp.tile.strip
        LON, LAT = np.meshgrid(lon[cols], lat[rows])
        x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(LON, LAT)
        c = np.floor((x - x0) / (x1 - x0) * rgb.shape[2]).astype(int)
        r = np.floor((y1 - y) / (y1 - y0) * rgb.shape[1]).astype(int)
        inside = (c >= 0) & (c < rgb.shape[2]) & (r >= 0) & (r < rgb.shape[1]) & (LON >= west) & (LON < east)
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        canvas[:, rr[inside], cc[inside]] = rgb[:, r[inside], c[inside]]
    ds = xr.Dataset({b: (("y", "x"), canvas[i]) for i, b in enumerate(("B04", "B03", "B02"))},
                    coords={"y": lat, "x": lon}).rio.write_crs("EPSG:4326")
    quicklook(ds, path, outlines=outlines, max_size=max_size)


def _dem_source(items: dict) -> str | None:
    dem = list(items.get("dem", {}).values())
    if not dem:
        return None
    collection = dem[0].get("collection") or ""
    return {"cop-dem-glo-30": "COPDEM30", "cop-dem-glo-90": "COPDEM90", "nasadem": "NASADEM"}.get(collection, collection)
