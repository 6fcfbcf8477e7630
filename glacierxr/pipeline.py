"""Regional inventory production: search -> cube -> predict -> Zarr -> outlines -> inventory.

:func:`run_inventory` (and ``glacierxr inventory`` on the command line) runs a whole region on
the threaded scheduler, a LocalCluster (``workers=N``) or an existing Dask cluster
(``scheduler=ADDRESS``), shows a progress bar fed by the Zarr writer's done-records, and writes
into one output folder:

``probability.zarr`` (glacier probability, Zarr v3), ``outlines.parquet`` and ``outlines.gpkg``
(glacier polygons with the RGI-style attributes), ``inventory.csv`` (the attributes),
``quicklook.png`` (composite with the outlines) and ``manifest.json`` (STAC item ids, versions,
parameters, model checksum, timings, km² processed).

Resuming: the probability raster is the only expensive output and is written chunk by chunk
with done-records (:mod:`glacierxr.store`); a run killed at any moment (``kill -9`` included)
and started again with ``resume=True`` computes only the missing chunks. Every other output is
derived deterministically from the finished raster and written atomically (temporary file,
then rename), so a resumed run ends with exactly the outputs of an uninterrupted one. A folder
holding an earlier run is never touched without ``resume`` or ``overwrite``; ``resume`` with
different parameters is refused.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import xarray as xr

from glacierxr.errors import GridError, InvalidArgumentError, StoreExistsError, UnknownModelError
from glacierxr.geo import validate_bbox
from glacierxr.predict import model_token
from glacierxr.search import validate_datetime
from glacierxr.tiling import check_tiling

__all__ = ["run_inventory", "sensors_for"]

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
    if out.exists() and any(out.iterdir()):
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
                f"{out} already exists and is not empty; pass --resume (resume=True) to finish the run in it, "
                "--overwrite (overwrite=True) to replace it, or choose another --out."
            )
    if check_only:
        return
    out.mkdir(parents=True, exist_ok=True)
    _atomic(out / _PARAMS, lambda p: p.write_text(json.dumps(params, indent=1, sort_keys=True)))


def _check_options(model, *, chunk, tile, overlap, max_cloud, min_area_km2, unit_chunks, workers, scheduler) -> None:
    """Validate the run's options before anything is searched, read or written."""
    if isinstance(chunk, bool) or not isinstance(chunk, int | np.integer) or chunk <= 0:
        raise GridError(f"chunk={chunk!r} must be a positive number of pixels, e.g. 2048.")
    check_tiling(tile, overlap, model.output_stride)
    if max_cloud is not None and not (0 <= float(max_cloud) <= 100):
        raise InvalidArgumentError(f"max_cloud={max_cloud} must be a percentage in [0, 100], e.g. 20.")
    if isinstance(min_area_km2, bool) or not (isinstance(min_area_km2, numbers.Real) and np.isfinite(min_area_km2)
                                              and min_area_km2 >= 0):
        raise InvalidArgumentError(f"min_area_km2={min_area_km2!r} must be a non-negative area in km², e.g. 0.05.")
    if unit_chunks is not None and (isinstance(unit_chunks, bool) or not isinstance(unit_chunks, int) or unit_chunks < 1):
        raise InvalidArgumentError(f"unit_chunks={unit_chunks!r} must be a positive number of chunks, e.g. 1024.")
    if workers is not None and scheduler is not None:
        raise InvalidArgumentError("Pass either workers (start a LocalCluster) or scheduler (connect), not both.")
    if workers is not None and workers < 1:
        raise InvalidArgumentError(f"workers={workers} must be at least 1 (or leave it out for threads).")


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
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            echo(f"dask       LocalCluster({workers} workers x 1 thread), dashboard {client.dashboard_link}")
            yield client
    else:
        with Client(scheduler) as client:
            echo(f"dask       {scheduler}, dashboard {client.dashboard_link}")
            yield client


@contextlib.contextmanager
def _progress(store: Path, total: int, km2_per_chunk: float, quiet: bool) -> Iterator[None]:
    """A live bar fed by the store's done-records: chunks done / total, km²/s, ETA."""
    if quiet:
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from glacierxr.store import store_status

    start_done = store_status(store)["chunks_done"]
    t0 = time.perf_counter()
    stop = threading.Event()
    columns = (TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TextColumn("chunks"),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("predict", total=total, completed=start_done, rate="")

        def poll() -> None:
            while not stop.wait(0.5):
                done = store_status(store)["chunks_done"]
                rate = (done - start_done) * km2_per_chunk / max(time.perf_counter() - t0, 1e-9)
                bar.update(task, completed=done, rate=f"{rate:,.1f} km²/s")

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            done = store_status(store)["chunks_done"]
            rate = (done - start_done) * km2_per_chunk / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, completed=done, rate=f"{rate:,.1f} km²/s")


def _model(model):
    from glacierxr import models

    if isinstance(model, str) and not Path(model).exists():
        if model == "band-ratio":
            return models.create("band-ratio", bands=["B03", "B04", "B08", "B11"])
        if model in models.available():
            raise InvalidArgumentError(
                f"model={model!r}: a learned architecture needs trained weights; pass a checkpoint path "
                "(gx.models.save), or 'band-ratio' for the non-learned method."
            )
        if Path(model).suffix in (".pt", ".pth") or "/" in model or "\\" in model:
            return models.load(model)  # CheckpointNotFoundError naming the path
        raise UnknownModelError(
            f"model={model!r} is neither a checkpoint file nor a known model; pass the path of a checkpoint "
            "written by gx.models.save, or 'band-ratio' for the non-learned method."
        )
    return models.load(model) if isinstance(model, str | Path) else model


def run_inventory(
    stac: str,
    *,
    bbox: Sequence[float],
    datetime: str,
    out: str | Path,
    model="band-ratio",
    workers: int | None = None,
    scheduler: str | None = None,
    chunk: int = 2048,
    tile: int = 512,
    overlap: int = 64,
    max_cloud: float | None = None,
    min_area_km2: float = 0.05,
    unit_chunks: int | None = 1024,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    echo=print,
) -> dict:
    """Produce the glacier inventory of a region, end to end; see the module docstring.

    Parameters
    ----------
    stac
        STAC API URL or provider preset (``earth-search``, ``planetary-computer``).
    bbox, datetime
        Region ``(west, south, east, north)`` in degrees and the date window.
    out
        Output folder.
    model
        ``"band-ratio"``, a checkpoint path, or a glacierxr model.
    workers, scheduler
        Start a LocalCluster of ``workers`` processes, or connect to a running scheduler;
        neither: Dask's threaded scheduler. In a script, call it under
        ``if __name__ == "__main__":``: worker processes re-import the script that starts them.
    chunk
        Chunk size in pixels (rounded to the window stride by predict).
    tile, overlap
        Prediction windows.
    max_cloud
        Maximum scene cloud cover (percent).
    min_area_km2
        Smallest glacier kept.
    unit_chunks
        Work units: chunks submitted to Dask at once (``None``: all). The default, 1,024 chunks
        (~25k tasks, about 4,300 km² at 10 m with 2048-pixel chunks), keeps every submitted graph far
        below the ~500k tasks where schedulers struggle; units are consecutive rows of chunks, and
        the chunks bordering a unit are computed again for it (their spill).
    resume, overwrite
        Continue an interrupted run in ``out``, or replace what is there.
    quiet
        No progress bar and no messages.
    echo
        Where messages go (``print`` by default).

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
        Any other input error (bbox, dates, model, tiling, chunk size, search, items) is raised
        before ``out`` is created, changed or, with ``overwrite``, removed.
    """
    import glacierxr as gx
    from glacierxr.quicklook import quicklook
    from glacierxr.store import store_status, to_zarr

    say = (lambda *_: None) if quiet else echo
    out = Path(out)
    the_model = _model(model)
    params = {
        "stac": stac, "bbox": [float(v) for v in bbox], "datetime": datetime, "model": the_model.arch,
        "model_checksum": model_token(the_model), "chunk": chunk, "tile": tile, "overlap": overlap,
        "max_cloud": max_cloud, "min_area_km2": min_area_km2,
    }
    validate_bbox(bbox)
    validate_datetime(datetime)
    _check_options(the_model, chunk=chunk, tile=tile, overlap=overlap, max_cloud=max_cloud, min_area_km2=min_area_km2,
                   unit_chunks=unit_chunks, workers=workers, scheduler=scheduler)
    # refusals first, then everything that can fail on the inputs (search, items, bands), and only
    # then is the folder touched: a failing run never removes or half-writes an earlier one
    _prepare_folder(out, params, resume=resume, overwrite=overwrite, check_only=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    items = gx.search(stac, bbox=bbox, datetime=datetime, sensors=sensors_for(the_model.bands), max_cloud=max_cloud)
    timings["search_s"] = time.perf_counter() - t
    say("search     " + ", ".join(f"{k}: {len(v)} items" for k, v in items.items()))
    cube = gx.open_cube(items, bbox=bbox, chunks=chunk)
    grid_km2 = cube.sizes["y"] * cube.sizes["x"] * float(cube.attrs["resolution"]) ** 2 / 1e6
    say(f"cube       {cube.sizes['y']} x {cube.sizes['x']} px, {grid_km2:,.1f} km², {len(cube.data_vars)} variables")
    prob = cube.glacier.predict(the_model, tile=tile, overlap=overlap, chunks=chunk)  # lazy: checks bands
    _prepare_folder(out, params, resume=resume, overwrite=overwrite)
    with _dask_client(workers, scheduler, say):
        store = out / "probability.zarr"
        n_chunks = int(np.prod(prob.data.numblocks))
        t = time.perf_counter()
        if not store_status(store)["complete"]:
            with _progress(store, n_chunks, grid_km2 / n_chunks, quiet):
                to_zarr(prob, store, batch=unit_chunks)
        timings["predict_s"] = time.perf_counter() - t
        written = xr.open_zarr(store, decode_coords="all")["glacier_probability"]
        t = time.perf_counter()
        outlines = written.glacier.outlines(min_area_km2=min_area_km2)
        timings["outlines_s"] = time.perf_counter() - t
        t = time.perf_counter()
        date = datetime.split("/")[-1] if "/" in datetime else datetime
        inv = gx.inventory(outlines, cube["elevation"], date=date or None, dem_source=_dem_source(items),
                           probability=written)
        timings["inventory_s"] = time.perf_counter() - t
        for name in ("outlines.parquet", "outlines.gpkg"):  # the driver follows the suffix
            _atomic(out / name, lambda p: gx.write_inventory(inv, p))
        _atomic(out / "inventory.csv", lambda p: inv.drop(columns="geometry").to_csv(p, index=False))
        t = time.perf_counter()
        preview = _preview_cube(items, bbox, cube)
        _atomic(out / "quicklook.png", lambda p: quicklook(preview, p, outlines=outlines))
        timings["quicklook_s"] = time.perf_counter() - t
    manifest = {
        "parameters": params,
        "items": {k: [it.id for it in v] for k, v in items.items()},
        "versions": _versions(),
        "grid": {"crs": cube.attrs["crs"], "shape": [cube.sizes["y"], cube.sizes["x"]],
                 "resolution_m": float(cube.attrs["resolution"]), "chunks": n_chunks},
        "km2_processed": grid_km2,
        "glaciers": len(inv),
        "glacier_area_km2": float(inv["area_km2"].sum()) if len(inv) else 0.0,
        "timings_s": timings,
        "outputs": ["probability.zarr", "outlines.parquet", "outlines.gpkg", "inventory.csv", "quicklook.png"],
    }
    _atomic(out / "manifest.json", lambda p: p.write_text(json.dumps(manifest, indent=1, default=str)))
    shutil.rmtree(out / ".partial", ignore_errors=True)
    say(f"inventory  {len(inv)} glaciers, {manifest['glacier_area_km2']:.2f} km² -> {out}")
    return manifest


def _preview_cube(items: dict, bbox: Sequence[float], cube: xr.Dataset, max_size: int = 1024) -> xr.Dataset:
    """The optical composite at quicklook resolution: a coarse grid lets GDAL read COG overviews
    instead of every full-resolution pixel again."""
    import glacierxr as gx

    factor = int(np.ceil(max(cube.sizes["y"], cube.sizes["x"]) / max_size))
    if factor <= 1 or "sentinel-2" not in items:
        return cube
    resolution = float(cube.attrs["resolution"]) * factor
    return gx.open_cube({"sentinel-2": items["sentinel-2"]}, bbox=bbox, resolution=resolution, crs=cube.rio.crs,
                        chunks=max_size, indices=False)


def _dem_source(items: dict) -> str | None:
    dem = items.get("dem")
    if not dem:
        return None
    collection = dem[0].collection_id or ""
    return {"cop-dem-glo-30": "COPDEM30", "cop-dem-glo-90": "COPDEM90", "nasadem": "NASADEM"}.get(collection, collection)

