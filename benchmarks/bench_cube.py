"""Benchmark: compute a datacube from local COGs vs a plain rasterio read of the same windows.

    python benchmarks/bench_cube.py [--size 4096] [--dates 5] [--chunks 2048] [--workdir /tmp/glacierxr-bench]

Writes (or reuses) a synthetic region of SIZE x SIZE pixels, serves it with the local STAC API,
and times:

* ``cube``: ``gx.open_cube(...).compute()`` (Dask threaded scheduler, all cores): stackstac
  reads, nodata/scale/offset, SCL masking, median composites, DEM warp, indices.
* ``rasterio``: the same pixels read with rasterio through a ``WarpedVRT`` per asset (what
  stackstac does for every asset), window by window (the cube's chunks), one thread, no
  processing: the yardstick of issue 14, slower than the floor below.
* ``rasterio+numpy`` (``--numpy``): the same reads plus the same arithmetic in NumPy
  (scale/offset, masking, nanmedian, indices), one thread: what a hand-written loop would cost.
* ``direct read``: the read floor: every asset window read as directly as rasterio allows (a
  plain windowed read, pixels repeated for 20 m assets, WarpedVRT only for assets off the grid's
  lattice such as the geographic DEM), on as many threads as the cube uses, each thread keeping
  its datasets open across windows (as the cube's reader does, so GDAL's block cache serves the
  source tiles two chunks share).

Each repeat runs them in turn; prints the best wall and CPU times (all threads of the process)
and the ratios of the cube to each. The machines are shared and noisy: compare ratios, not
absolute seconds, and prefer the CPU ratio when wall times swing.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

import glacierxr as gx
from glacierxr.geo import grid_from_bbox
from glacierxr.sensors import SCL_MASKED
from glacierxr.stac_server import serve
from glacierxr.synthetic import make_region


def _region(workdir: Path, size: int, dates: int):
    marker = workdir / "region.json"
    region = make_region(workdir, seed=0, shape=(size, size), dates=dates) if not marker.exists() else None
    if region is not None:
        marker.write_text(json.dumps({"bbox": region.bbox, "datetime": region.datetime}))
    info = json.loads(marker.read_text())
    return tuple(info["bbox"]), info["datetime"]


def _plain_read(plan, grid, chunks: int, with_numpy: bool) -> float:
    """Read every asset window by window with rasterio (and optionally do the cube's arithmetic)."""
    t0 = time.perf_counter()
    h, w = grid.shape
    profiles = {}
    for r0 in range(0, h, chunks):
        for c0 in range(0, w, chunks):
            win_h, win_w = min(chunks, h - r0), min(chunks, w - c0)
            out = {}
            for name, sp in plan.sensors.items():
                stack = []
                for it in sp.items:
                    bands = []
                    for band in sp.bands:
                        a = sp.asset(it.id, band)
                        path = a.href.replace("file://", "")
                        with rasterio.open(path) as src:
                            resampling = Resampling.bilinear if name != "sentinel-2" else Resampling.nearest
                            with WarpedVRT(src, crs=grid.crs.to_wkt(), transform=grid.transform, width=w, height=h,
                                           resampling=resampling) as vrt:
                                data = vrt.read(1, window=Window(c0, r0, win_w, win_h), out_dtype="float32")
                        if with_numpy:
                            data = np.where(data == (a.nodata if a.nodata is not None else np.nan), np.nan, data)
                            data = data * a.scale + a.offset
                        bands.append(data)
                    stack.append(bands)
                if with_numpy:
                    arr = np.asarray(stack)  # (time, band, y, x)
                    if sp.sensor.mask is not None:
                        scl = arr[:, -1]
                        arr = np.where(np.isin(scl, SCL_MASKED)[:, None], np.nan, arr[:, :-1])
                    with warnings.catch_warnings():  # all-NaN pixels are expected (clouds)
                        warnings.simplefilter("ignore", RuntimeWarning)
                        out[name] = np.nanmedian(arr, axis=0) if name != "dem" else arr[0]
            if with_numpy:
                b03, b04, b08, b11 = (out["sentinel-2"][i] for i in (1, 2, 3, 4))
                profiles[(r0, c0)] = [(b08 - b04) / (b08 + b04), (b03 - b11) / (b03 + b11), (b03 - b08) / (b03 + b08)]
    return time.perf_counter() - t0


def _direct_asset(path: str, grid, r0: int, c0: int, h: int, w: int, resampling, opened: dict) -> np.ndarray:
    """One asset's pixels on a grid window: a plain windowed read (pixels repeated for coarser
    aligned assets), or a WarpedVRT read when the asset is not on the grid's lattice. ``opened``
    holds this thread's open datasets (kept across windows, as the cube's reader keeps them)."""
    from glacierxr.reader import alignment

    if path not in opened:
        opened[path] = rasterio.open(path)
    src = opened[path]
    epsg = src.crs.to_epsg() if src.crs else None
    lattice = alignment(src.transform, epsg, grid.transform, grid.epsg, resampling)
    if lattice is None:
        with WarpedVRT(src, crs=grid.crs.to_wkt(), transform=grid.transform, width=grid.shape[1],
                       height=grid.shape[0], resampling=resampling) as vrt:
            return vrt.read(1, window=Window(c0, r0, w, h), out_dtype="float32")
    k, ro, co = lattice
    out = np.full((h, w), np.nan, np.float32)
    # source rows/cols covering the window, clipped to the source
    sr0, sc0 = max((r0 - ro) // k, 0), max((c0 - co) // k, 0)
    sr1, sc1 = min(-(-(r0 + h - ro) // k), src.height), min(-(-(c0 + w - co) // k), src.width)
    if sr1 <= sr0 or sc1 <= sc0:
        return out
    data = src.read(1, window=Window(sc0, sr0, sc1 - sc0, sr1 - sr0), out_dtype="float32")
    if k > 1:
        data = np.repeat(np.repeat(data, k, axis=0), k, axis=1)
    # where the read block starts in destination pixels, relative to the window
    y0, x0 = ro + sr0 * k - r0, co + sc0 * k - c0
    ys, xs = slice(max(y0, 0), min(y0 + data.shape[0], h)), slice(max(x0, 0), min(x0 + data.shape[1], w))
    out[ys, xs] = data[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    return out


def _direct_read(plan, grid, chunks: int, threads: int) -> float:
    """Every asset read window by window on ``threads`` threads, as directly as rasterio allows:
    the read floor the cube (which reads aligned assets the same way) is held to."""
    from concurrent.futures import ThreadPoolExecutor

    h, w = grid.shape
    jobs = []
    for r0 in range(0, h, chunks):
        for c0 in range(0, w, chunks):
            win_h, win_w = min(chunks, h - r0), min(chunks, w - c0)
            for name, sp in plan.sensors.items():
                resampling = Resampling.bilinear if name != "sentinel-2" else Resampling.nearest
                for it in sp.items:
                    for band in sp.bands:
                        path = sp.asset(it.id, band).href.replace("file://", "")
                        jobs.append((path, r0, c0, win_h, win_w, resampling))
    local = threading.local()

    def run(job):
        if not hasattr(local, "opened"):
            local.opened = {}
            every.append(local.opened)
        return _direct_asset(job[0], grid, *job[1:], local.opened)

    every: list[dict] = []
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, jobs))
    seconds = time.perf_counter() - t0
    for opened in every:
        for src in opened.values():
            src.close()
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--chunks", type=int, default=2048)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--dates", type=int, default=5, help="Sentinel-2 acquisitions (the composite's depth)")
    p.add_argument("--numpy", action="store_true", help="also time the hand-written rasterio+NumPy loop (slow)")
    args = p.parse_args()
    workdir = args.workdir or Path(f"/tmp/glacierxr-bench-{args.size}-{args.dates}d")
    t0 = time.perf_counter()
    bbox, datetime = _region(workdir, args.size, args.dates)
    print(f"region {args.size}x{args.size} ready in {time.perf_counter() - t0:.1f} s ({workdir})")
    with serve(workdir / "stac") as url:
        items = gx.search(url, bbox=bbox, datetime=datetime)
    grid = grid_from_bbox(bbox, resolution=10)
    plan = gx.plan_cube(items, bbox=bbox)
    threads = os.cpu_count() or 1
    runs = {
        "cube": lambda: gx.open_cube(items, bbox=bbox, chunks=args.chunks).compute(),
        "rasterio": lambda: _plain_read(plan, grid, args.chunks, with_numpy=False),
        "direct read": lambda: _direct_read(plan, grid, args.chunks, threads),
    }
    if args.numpy:
        runs["rasterio+numpy"] = lambda: _plain_read(plan, grid, args.chunks, with_numpy=True)
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeat):
        for name, run in runs.items():
            c, t = _cpu_seconds(), time.perf_counter()
            run()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(_cpu_seconds() - c)
    best = {k: min(v) for k, v in wall.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    mpx = grid.shape[0] * grid.shape[1] / 1e6
    print(f"grid {grid.shape[0]}x{grid.shape[1]} ({mpx:.1f} Mpx, {grid.area_km2:.0f} km^2), chunks {args.chunks}, "
          f"best of {args.repeat}")
    for k, v in best.items():
        print(f"  {k:16s} {v:7.2f} s wall  {best_cpu[k]:7.2f} s CPU   {mpx / v:6.2f} Mpx/s")
    for k in [k for k in runs if k != "cube"]:
        note = f"  (both on {threads} threads; target <= 1.2)" if k == "direct read" else ""
        print(f"ratio cube / {k:14s} = {best['cube'] / best[k]:.2f} wall, {best_cpu['cube'] / best_cpu[k]:.2f} CPU{note}")


def _cpu_seconds() -> float:
    """CPU time of this process, all threads: steadier than wall time on a shared machine."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


if __name__ == "__main__":
    main()
