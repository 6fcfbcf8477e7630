"""Synthetic mountain ranges against a real one, and the ice-divide split against their truth.

    python benchmarks/bench_ranges.py [--seeds 1,2,3,4,5] [--size 2048]

For each seed, the static world of ``make_region`` (terrain="range", 10 m pixels) is generated
and its truth glaciers (ice split at the catchment divides the terrain was built from) are
summarised like the Everest reference: glaciers per 100 km², glacierised fraction, area
quantiles. The Everest rows are the 86 RGI 6.0 glaciers of the Landsat 7 scene in
``shared/data/real/everest_landsat7`` (472 km²): their whole RGI areas and their areas clipped to
the scene (a synthetic region clips its glaciers at its edge too, so that row is the like-for-like
one). Then the truth complexes are split again with :func:`glacierxr.divides.split_glaciers` on the
world's DEM, without knowing the catchments, and compared with the truth glaciers: count and
per-glacier IoU (each truth glacier against the split glacier overlapping it most).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine

from glacierxr.divides import split_glaciers
from glacierxr.inventory import compare_inventories
from glacierxr.ranges import EVEREST, size_stats
from glacierxr.synthetic import label_polygons, world

_SHARED = Path(os.environ.get("GLACIERXR_SHARED", Path(__file__).resolve().parents[2] / "shared"))
SHARED = _SHARED / "data" / "real" / "everest_landsat7"
CRS = "EPSG:32645"
COLUMNS = ("n", "per_100km2", "glacierised", "q10", "q25", "q50", "q75", "q90")


def everest() -> list[tuple[str, dict]]:
    if not (SHARED / "15_rgi60_glacier_outlines.gpkg").exists():
        return [("Everest (issue's figures)", {**EVEREST, "n": 86})]
    import geopandas as gpd
    import rasterio
    import shapely

    with rasterio.open(SHARED / "LE71400412000304SGS00_B4.tif") as src:
        scene, crs = shapely.box(*src.bounds), src.crs
    rgi = gpd.read_file(SHARED / "15_rgi60_glacier_outlines.gpkg").to_crs(crs)
    rgi = rgi[rgi.intersects(scene)]
    km2 = scene.area / 1e6
    whole = size_stats(rgi.area.to_numpy() / 1e6, km2)
    clipped = size_stats(rgi.geometry.intersection(scene).area.to_numpy() / 1e6, km2)
    return [("Everest RGI 6.0, whole areas", whole), ("Everest RGI 6.0, clipped to the scene", clipped)]


def split_scores(z, glaciers, complexes, res=10.0):
    h, w = z.shape
    transform = Affine(res, 0, 500_000.0, 0, -res, 3_100_000.0)
    dem = xr.DataArray(z.astype(np.float32), dims=("y", "x"), coords={
        "y": 3_100_000.0 - res * (np.arange(h) + 0.5), "x": 500_000.0 + res * (np.arange(w) + 0.5)}).rio.write_crs(CRS)
    truth = label_polygons(glaciers, transform, CRS)
    masses = label_polygons(complexes, transform, CRS)
    t = time.perf_counter()
    ours = split_glaciers(masses[masses.area >= 0.05e6], dem)
    seconds = time.perf_counter() - t
    truth = truth[truth.area >= 0.05e6]  # what a run keeps (min_area 0.05 km²)
    per, _ = compare_inventories(ours, truth)
    ious, area = per["iou"].to_numpy(), per["area_ref_km2"].to_numpy()
    return {"truth": len(truth), "ours": len(ours), "iou_median": float(np.median(ious)),
            "iou_median_1km2": float(np.median(ious[area > 1])) if (area > 1).any() else float("nan"),
            "iou_worst_1km2": float(ious[area > 1].min()) if (area > 1).any() else float("nan"),
            "glaciers_per_s": len(ours) / seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--size", type=int, default=2048, help="side in 10 m pixels (2048: 419 km², the Everest scene is 472)")
    a = p.parse_args()
    rows, splits = everest(), []
    km2 = a.size * a.size * 1e-4
    for seed in (int(s) for s in a.seeds.split(",")):
        t = time.perf_counter()
        z, ice, debris, glaciers, complexes, _ = world(np.random.default_rng(seed), (a.size, a.size))
        made = time.perf_counter() - t
        areas = np.bincount(glaciers.ravel())[1:] * 1e-4
        stats = size_stats(areas[areas > 0], km2)
        stats["debris"] = float(debris.sum() / max(ice.sum(), 1))
        stats["complexes"] = int(complexes.max())
        rows.append((f"seed {seed} ({made:.1f} s)", stats))
        splits.append((seed, split_scores(z, glaciers, complexes)))
    print(f"| region | {' | '.join(COLUMNS)} | complexes | debris share |")
    print("|---" * (len(COLUMNS) + 3) + "|")
    for name, s in rows:
        cells = [f"{s[c]:.0f}" if c == "n" else f"{s[c]:.2f}" if c != "per_100km2" else f"{s[c]:.1f}" for c in COLUMNS]
        extra = [str(s.get("complexes", "")), f"{s['debris']:.2f}" if "debris" in s else ""]
        print(f"| {name} | {' | '.join(cells)} | {' | '.join(extra)} |")
    print()
    print("| seed | truth glaciers >= 0.05 km² | split glaciers | IoU median | IoU median > 1 km² | worst > 1 km² | glaciers/s |")
    print("|---|---|---|---|---|---|---|")
    for seed, s in splits:
        print(f"| {seed} | {s['truth']} | {s['ours']} | {s['iou_median']:.3f} | {s['iou_median_1km2']:.3f} | "
              f"{s['iou_worst_1km2']:.3f} | {s['glaciers_per_s']:.0f} |")


if __name__ == "__main__":
    main()
