"""Benchmark the whole `glacierxr inventory` run on a synthetic region with 1 and 2 workers.

    python benchmarks/bench_inventory.py [--size 4096] [--model band-ratio|PATH] [--workers 1,2]

Writes (or reuses) the seeded region of bench_cube.py, serves it with the local STAC API and
runs search -> cube -> predict -> Zarr -> outlines -> inventory -> quicklook on a LocalCluster
of N single-threaded worker processes. Prints wall time and km^2/s (grid area / wall time) per
worker count, and the stage timings from the manifest. Compare ratios: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from glacierxr.pipeline import run_inventory
from glacierxr.stac_server import serve
from glacierxr.synthetic import make_region


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--model", default="band-ratio")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--chunk", type=int, default=2048)
    args = p.parse_args()
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
                                     model=args.model, workers=n, chunk=args.chunk, quiet=True)
            seconds = time.perf_counter() - t0
            results[n] = seconds
            stages = ", ".join(f"{k[:-2]} {v:.1f}" for k, v in manifest["timings_s"].items())
            print(f"{n} worker(s): {seconds:6.1f} s  {manifest['km2_processed'] / seconds:6.1f} km^2/s  "
                  f"({manifest['km2_processed']:.0f} km^2, {manifest['glaciers']} glaciers; stages s: {stages})")
    if len(results) > 1:
        one, two = results[min(results)], results[max(results)]
        print(f"speed-up {max(results)} vs {min(results)} workers: {one / two:.2f}x")


if __name__ == "__main__":
    main()
