"""Kill -9 at random moments of a multi-tile run, resume each, compare with an uninterrupted run.

A seeded synthetic region across a UTM zone line is run with small production tiles on a
2-worker LocalCluster (``glacierxr inventory --workers 2``). Each trial starts the command in
its own process group, sends SIGKILL to the whole group (the command and its workers) after a
random delay drawn uniformly over 90 % of an uninterrupted run (so kills land in start-up,
planning, tiles, merge and output writing alike), then runs the same command with ``--resume``
to the end and compares every output with the uninterrupted run: the Zarr values of every tile,
the polygons (``equals_exact``) and ``inventory.csv`` byte for byte.

Run: ``.venv/bin/python benchmarks/bench_kill_resume.py [--trials 20] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXE = str(Path(sys.executable).with_name("glacierxr"))


def same(a: Path, b: Path) -> str | None:
    """None when the two runs' outputs are identical, else what differs."""
    import geopandas as gpd
    import numpy as np
    import xarray as xr

    stores = sorted(p.relative_to(a) for p in (a / "tiles").glob("*/probability.zarr"))
    if stores != sorted(p.relative_to(b) for p in (b / "tiles").glob("*/probability.zarr")):
        return "different tile stores"
    for s in stores:
        va = xr.open_zarr(a / s)["glacier_probability"].values
        vb = xr.open_zarr(b / s)["glacier_probability"].values
        if not np.array_equal(va, vb, equal_nan=True):
            return f"values of {s}"
    ga, gb = gpd.read_parquet(a / "outlines.parquet"), gpd.read_parquet(b / "outlines.parquet")
    if len(ga) != len(gb) or not all(x.equals_exact(y, 0) for x, y in zip(ga.geometry, gb.geometry, strict=True)):
        return "polygons"
    if (a / "inventory.csv").read_bytes() != (b / "inventory.csv").read_bytes():
        return "inventory.csv"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()

    from glacierxr.stac_server import serve
    from glacierxr.synthetic import make_region

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        region = make_region(root / "region", seed=0, shape=(args.size, args.size), center=(90.0, 28.0), dates=2)
        with serve(region.stac_dir) as url:
            cmd = [EXE, "inventory", "--stac", url, "--bbox", *map(str, region.bbox), "--datetime", region.datetime,
                   "--tile-km", "1", "--margin-km", "0.3", "--chunk", "128", "--window", "128", "--overlap", "32",
                   "--min-area", "0.01", "--workers", "2", "--quiet"]
            t0 = time.perf_counter()
            subprocess.run([*cmd, "--out", str(root / "reference")], check=True)
            full = time.perf_counter() - t0
            tiles = json.loads((root / "reference" / "manifest.json").read_text())["plan"]["tiles"]
            print(f"uninterrupted run: {full:.1f} s, {tiles} tiles")
            results = []
            for k in range(args.trials):
                out = root / f"trial{k}"
                delay = rng.uniform(0.0, 0.9 * full)  # most kills land before the end
                proc = subprocess.Popen([*cmd, "--out", str(out)], start_new_session=True)
                time.sleep(delay)
                finished = proc.poll() is not None
                if not finished:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                done = len(list((out / "tiles").glob("*/done.json"))) if (out / "tiles").exists() else 0
                stage = ("finished" if finished else "before plan" if not (out / "plan" / "plan.json").exists()
                         else f"{done}/{tiles} tiles" if done < tiles else "merge/outputs")
                resumed = subprocess.run([*cmd, "--out", str(out), "--resume"], capture_output=True, text=True)
                diff = same(root / "reference", out) if resumed.returncode == 0 else f"resume failed: {resumed.stderr[-300:]}"
                results.append(diff is None)
                print(f"trial {k + 1:2d}: kill at {delay:5.1f} s ({stage}): {'identical' if diff is None else diff}")
        print(f"{sum(results)}/{len(results)} resumed runs identical to the uninterrupted run")


if __name__ == "__main__":
    main()
