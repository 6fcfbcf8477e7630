"""Benchmark: vectorise a SIZE x SIZE glacier mask with small vs large chunks (time, peak memory).

    python benchmarks/bench_vectorize.py [--size 8192] [--chunks 256,2048]

The mask is generated lazily, chunk by chunk, from a smooth function of the global pixel
coordinates (blobs with holes, ~30 % cover), so no run ever holds the whole raster. Each
chunking runs in a fresh process; peak RSS is that process's maximum.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import dask.array as da
import numpy as np
import xarray as xr


def lazy_mask(size: int, chunks: int) -> xr.DataArray:
    rng = np.random.default_rng(0)
    waves = rng.uniform(0.002, 0.02, (12, 2)) * rng.choice([-1, 1], (12, 2))
    phases = rng.uniform(0, 2 * np.pi, 12)

    def block(_, block_info=None):
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        y, x = np.mgrid[r0:r1, c0:c1]
        f = sum(np.sin(k[0] * y + k[1] * x + p) for k, p in zip(waves, phases, strict=True))
        return (f > 1.2).astype(np.float32)

    data = da.map_blocks(block, da.empty((size, size), chunks=chunks, dtype=np.float32), dtype=np.float32)
    mask = xr.DataArray(data, dims=("y", "x"), coords={"y": 5e6 - 5 - 10 * np.arange(size), "x": 4e5 + 5 + 10 * np.arange(size)})
    return mask.rio.write_crs("EPSG:32645")


def child(size: int, chunks: int) -> None:
    import glacierxr  # noqa: F401

    mask = lazy_mask(size, chunks)
    t0 = time.perf_counter()
    out = mask.glacier.outlines(min_area_km2=0.05)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "polygons": len(out), "area_km2": float(out.area_km2.sum())}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=8192)
    p.add_argument("--chunks", default="256,2048")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.size, args.child)
        return
    results = {}
    for c in map(int, args.chunks.split(",")):
        out = subprocess.run([sys.executable, __file__, "--size", str(args.size), "--child", str(c)],
                             capture_output=True, text=True, check=True)
        results[c] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[c]
        print(f"chunks {c:5d}: {r['seconds']:6.2f} s  peak RSS {r['peak_rss_mb']:6.0f} MB  "
              f"{r['polygons']} polygons, {r['area_km2']:.2f} km^2  {args.size ** 2 / 1e6 / r['seconds']:.1f} Mpx/s")
    first, last = (results[c] for c in (min(results), max(results)))
    print(f"same polygons: {first['polygons'] == last['polygons'] and abs(first['area_km2'] - last['area_km2']) < 1e-6}")
    print(f"time ratio small/large chunks {first['seconds'] / last['seconds']:.2f}, "
          f"peak RSS ratio {first['peak_rss_mb'] / last['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
