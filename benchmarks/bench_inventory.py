"""Benchmark the whole `glacierxr inventory` run, or the attribute step alone in glaciers/s.

    python benchmarks/bench_inventory.py [--size 4096] [--model band-ratio|PATH] [--workers 1,2]
    python benchmarks/bench_inventory.py --mode glaciers [--glaciers 3000] [--repeat 3]
    python benchmarks/bench_inventory.py --mode split [--glaciers 3000] [--repeat 3]

``--mode pipeline`` (default) writes (or reuses) the seeded region of bench_cube.py, serves it
with the local STAC API and runs search -> cube -> predict -> Zarr -> outlines -> inventory ->
quicklook on a LocalCluster of N single-threaded worker processes. Prints wall time and km^2/s
(grid area / wall time) per worker count, and the stage timings from the manifest.

``--mode glaciers`` times ``gx.inventory`` alone on one in-memory tile, as a tile worker runs
it: :func:`glacierxr.testing.glaciers.many_glaciers` (log-normal areas, median 0.2 km², 10 m
UTM grid, NumPy-backed DEM and probability), in this one thread. It prints glaciers/s of the
batched path (what ``inventory`` does for in-memory inputs) and of the one-glacier-at-a-time
path it replaced, both in wall and in CPU time (CPU time is steadier on a shared machine), the
best of ``--repeat`` runs, interleaved, and the ratio; it also checks the two give identical
attributes. Compare ratios: the machine is shared.

``--mode split`` times a tile's attribute step with the ice-divide split on (what a regional run
does by default: :func:`glacierxr.divides.split_glaciers`, then the inventory of the glaciers)
and off, on the same tile: glaciers/s out, ice masses/s in, and the CPU cost ratio.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import tempfile
import time
from pathlib import Path


def bench_split(n: int, repeat: int) -> None:
    """glaciers/s of a tile's attribute step with the ice-divide split on (split + inventory) and off."""
    from glacierxr.divides import split_glaciers
    from glacierxr.inventory import inventory
    from glacierxr.testing.glaciers import many_glaciers

    outlines, dem, _ = many_glaciers(n)
    best: dict[str, tuple[float, float]] = {}
    rows = {}
    for _ in range(repeat):
        for mode in ("off", "on"):
            w0, c0 = time.perf_counter(), time.process_time()
            rows[mode] = inventory(outlines, dem, split=mode == "on")
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            b = best.get(mode, (float("inf"), float("inf")))
            best[mode] = (min(b[0], wall), min(b[1], cpu))
    w0 = time.perf_counter()
    split_glaciers(outlines, dem)
    split_s = time.perf_counter() - w0
    for mode in ("off", "on"):
        wall, cpu = best[mode]
        out = len(rows[mode])
        print(f"split {mode:3s}: {n} ice masses -> {out} glaciers; {out / wall:6.0f} glaciers/s wall, "
              f"{out / cpu:6.0f} glaciers/s CPU, {n / cpu:6.0f} masses/s CPU ({wall:.2f} s wall, best of {repeat})")
    print(f"the split alone: {split_s:.2f} s; cost of the split: {best['on'][1] / best['off'][1]:.2f}x CPU per tile")


def bench_glaciers(n: int, repeat: int) -> None:
    """glaciers/s of the batched and of the one-by-one inventory on one in-memory tile."""
    import pandas as pd

    from glacierxr.testing.glaciers import many_glaciers

    inv = importlib.import_module("glacierxr.inventory")  # the module; gx.inventory is the function
    t0 = time.perf_counter()
    outlines, dem, prob = many_glaciers(n)
    print(f"many_glaciers({n}): {time.perf_counter() - t0:.1f} s, DEM {dem.shape[0]} x {dem.shape[1]} px at 10 m, "
          f"median area {outlines.area.median() / 1e6:.3f} km^2, {(outlines.area > 1e6).mean():.0%} > 1 km^2")
    kw = dict(probability=prob, date="2021-08-01", dem_source="synthetic")
    best: dict[bool, tuple[float, float]] = {}
    results = {}
    for _ in range(repeat):
        for batched in (True, False):
            w0, c0 = time.perf_counter(), time.process_time()
            results[batched] = inv._inventory(outlines, dem, batched=batched, **kw)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            b = best.get(batched, (float("inf"), float("inf")))
            best[batched] = (min(b[0], wall), min(b[1], cpu))
    for batched, label in ((False, "one by one (old)"), (True, "batched (new)")):
        wall, cpu = best[batched]
        print(f"{label:17s}: {n / wall:7.0f} glaciers/s wall, {n / cpu:7.0f} glaciers/s CPU  "
              f"({wall:.2f} s wall, {cpu:.2f} s CPU, best of {repeat})")
    print(f"ratio new/old: {best[False][0] / best[True][0]:.2f}x wall, {best[False][1] / best[True][1]:.2f}x CPU")
    pd.testing.assert_frame_equal(results[True], results[False], check_exact=True)
    print("attributes identical: yes")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("pipeline", "glaciers", "split"), default="pipeline")
    p.add_argument("--glaciers", type=int, default=3000, help="--mode glaciers: number of glaciers")
    p.add_argument("--repeat", type=int, default=3, help="--mode glaciers: runs of each path (best is kept)")
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--model", default="band-ratio")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--chunk", type=int, default=2048)
    p.add_argument("--tile-km", type=float, default=10.0, help="production tiles (several per region)")
    p.add_argument("--margin-km", type=float, default=1.0)
    args = p.parse_args()
    if args.mode == "glaciers":
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GDAL_NUM_THREADS"):
            os.environ.setdefault(var, "1")  # one thread, like a single-threaded tile worker
        bench_glaciers(args.glaciers, args.repeat)
    elif args.mode == "split":
        bench_split(args.glaciers, args.repeat)
        return
    from glacierxr.pipeline import run_inventory
    from glacierxr.stac_server import serve
    from glacierxr.synthetic import make_region

    workdir = Path(f"/tmp/glacierxr-bench-{args.size}")
    marker = workdir / "region.json"
    if not marker.exists():
        region = make_region(workdir, seed=0, shape=(args.size, args.size))
        marker.write_text(json.dumps({"bbox": region.bbox, "datetime": region.datetime}))
    info = json.loads(marker.read_text())
    results = {}
    with serve(workdir / "stac") as url, tempfile.TemporaryDirectory() as tmp:
        for n in map(int, args.workers.split(",")):
            t0 = time.perf_counter()
            manifest = run_inventory(url, bbox=info["bbox"], datetime=info["datetime"], out=Path(tmp) / f"w{n}",
                                     model=args.model, workers=n, chunk=args.chunk, tile_km=args.tile_km,
                                     margin_km=args.margin_km, quiet=True)
            seconds = time.perf_counter() - t0
            results[n] = seconds
            stages = ", ".join(f"{k[:-2]} {v:.1f}" for k, v in manifest["timings_s"].items())
            tiles = manifest["tiles"].values()
            per_tile = ", ".join(f"{k[:-2]} {sum(t['timings_s'].get(k, 0) for t in tiles):.1f}"
                                 for k in ("predict_s", "outlines_s", "inventory_s", "preview_s"))
            print(f"{n} worker(s): {seconds:6.1f} s  {manifest['km2_processed'] / seconds:6.1f} km^2/s  "
                  f"({manifest['km2_processed']:.0f} km^2 in {manifest['plan']['tiles']} tiles, {manifest['glaciers']} "
                  f"glaciers, {manifest['merged_glaciers']} merged; stages s: {stages}; summed over tiles: {per_tile})")
    if len(results) > 1:
        one, two = results[min(results)], results[max(results)]
        print(f"speed-up {max(results)} vs {min(results)} workers: {one / two:.2f}x")


if __name__ == "__main__":
    main()
