"""Dry run of a whole mountain range: search -> tiles -> predict -> merge -> inventory, pixels generated.

The 600 km Karakoram box (two UTM zones) is planned and run end to end at a coarse resolution
(100 m by default) on a LocalCluster, against metadata-only Earth Search-like items served by a
local STAC API (:mod:`glacierxr.testing.metadata`), with a stackstac reader that generates
pixels from their position instead of fetching them (:mod:`glacierxr.testing.generated`).
Reported: wall time per stage, the driver's peak RSS, tiles/s and km²/s, glaciers (and how many
were merged across tile borders or the zone line), and the seam checks:

* inside a zone no two output glaciers share an edge (a glacier cut at a tile border and not
  merged would leave two polygons sharing the border);
* across the zone line no two glaciers come closer than a pixel (two pieces left unmerged would);
* the merged outlines against the generator's true glacier field on both zones' grids (IoU).

Run: ``.venv/bin/python benchmarks/bench_dryrun.py [--resolution 100] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=float, default=100.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tile-km", type=float, default=100.0)
    parser.add_argument("--bbox", type=float, nargs=4, default=None, help="default: the 600 km Karakoram box")
    parser.add_argument("--out", type=Path, default=None, help="keep the run here (default: a temporary folder)")
    parser.add_argument("--world", default="range", help="range (mountain ranges) or blobs (many small glaciers)")
    parser.add_argument("--compare-tile-km", type=float, default=None,
                        help="run again with this tile size and compare the glaciers (count, polygons, areas)")
    parser.add_argument("--no-checks", action="store_true", help="skip the seam and truth checks")
    args = parser.parse_args()

    import geopandas as gpd
    import numpy as np
    import shapely

    import glacierxr as gx
    from glacierxr.stac_server import serve
    from glacierxr.testing.generated import GeneratedReader, rasterize_truth
    from glacierxr.testing.metadata import KARAKORAM_BBOX, write_catalog

    bbox = tuple(args.bbox or KARAKORAM_BBOX)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        info = write_catalog(root / "stac", bbox, world=args.world)
        out = args.out or root / "run"
        with serve(root / "stac") as url:
            t0 = time.perf_counter()
            manifest = gx.run_inventory(url, bbox=bbox, datetime=info["datetime"], out=out, resolution=args.resolution,
                                        tile_km=args.tile_km, chunk=1024, window=256, overlap=32,
                                        workers=args.workers, reader=GeneratedReader, overwrite=True,
                                        min_area_km2=0.05)
            wall = time.perf_counter() - t0
            rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # the driver, before the checks
            compared = None
            if args.compare_tile_km:
                other = gx.run_inventory(url, bbox=bbox, datetime=info["datetime"], out=root / "other",
                                         resolution=args.resolution, tile_km=args.compare_tile_km, chunk=1024,
                                         window=256, overlap=32, workers=args.workers, reader=GeneratedReader,
                                         quiet=True, quicklook=False, min_area_km2=0.05)
                a, b = gpd.read_parquet(out / "outlines.parquet"), gpd.read_parquet(root / "other" / "outlines.parquet")
                same = sum(x.equals_exact(y, 0) for x, y in zip(a.geometry, b.geometry, strict=False))
                compared = {"tile_km": args.compare_tile_km, "tiles": other["plan"]["tiles"],
                            "glaciers": other["glaciers"], "merged_glaciers": other["merged_glaciers"],
                            "identical_polygons": int(same),
                            "max_rel_area_diff": float(np.max(np.abs(a.area_km2.to_numpy() - b.area_km2.to_numpy())
                                                              / b.area_km2.to_numpy())) if len(a) == len(b) else None}
        if args.no_checks:
            tiles = manifest["tiles"].values()
            whole = sum(t["glaciers"] for t in tiles)
            inv_s = sum(t["timings_s"]["inventory_s"] for t in tiles)
            print(json.dumps({"bbox": bbox, "world": args.world, "resolution_m": args.resolution,
                              "tiles": manifest["plan"]["tiles"], "wall_s": round(wall, 1),
                              "stages_s": {k: round(v, 1) for k, v in manifest["timings_s"].items()},
                              "driver_peak_rss_gb": round(rss_gb, 2), "glaciers": manifest["glaciers"],
                              "merged_glaciers": manifest["merged_glaciers"],
                              "whole_glaciers_per_s_per_worker": round(whole / max(inv_s, 1e-9), 1),
                              "median_km2": float(gpd.read_parquet(out / "outlines.parquet")["area_km2"].median()),
                              "compared": compared}, indent=1))
            return
        outlines = gpd.read_parquet(out / "outlines.parquet")
        geoms = outlines.geometry.values
        tree = shapely.STRtree(geoms)
        left, right = tree.query(geoms, predicate="intersects")
        shared = sum(1 for i, j in zip(left, right, strict=True) if i < j and geoms[i].intersection(geoms[j]).length > 0)
        # across the zone line: the closest pair of glaciers on either side, in pixels
        pixel_deg = args.resolution / 111_000.0
        zone_lines = sorted({-180 + 6 * z for z in range(61)} & set(np.arange(np.floor(bbox[0]), np.ceil(bbox[2]) + 1)))
        near = []
        for lon in zone_lines:
            west = outlines[outlines.geometry.bounds.maxx.between(lon - 0.5, lon + 1e-9)].geometry.values
            east = outlines[outlines.geometry.bounds.minx.between(lon - 1e-9, lon + 0.5)].geometry.values
            for g in west:
                d = np.array([g.distance(h) for h in east if not h.equals(g)])  # degrees: a ~pixel scale
                if len(d):
                    near.append(float(d.min()) / pixel_deg)
        crossing = sum(int(g.bounds[0] < lon < g.bounds[2]) for g in geoms for lon in zone_lines)
        # against the truth, on each zone's grid
        ious = {}
        mosaics = gx.pipeline.open_mosaic(out)
        from rasterio import features

        for epsg, prob in mosaics.items():
            mask = prob.values >= 0.5
            transform = prob.rio.transform()
            truth = rasterize_truth(epsg, transform, mask.shape, world=args.world)
            valid = np.isfinite(prob.values)
            mapped = features.rasterize(((g, 1) for g in outlines.to_crs(epsg).geometry), out_shape=mask.shape,
                                        transform=transform).astype(bool)
            inter, union = (mapped & truth & valid).sum(), ((mapped | truth) & valid).sum()
            ious[epsg] = float(inter / max(union, 1))
        t = manifest["timings_s"]
        report = {
            "bbox": bbox, "resolution_m": args.resolution, "workers": args.workers, "tiles": manifest["plan"]["tiles"],
            "epsg": manifest["plan"]["epsg"], "items": manifest["plan"]["items"], "km2": round(manifest["km2_processed"]),
            "max_tasks_per_tile": manifest["plan"]["max_tasks_per_tile"], "wall_s": round(wall, 1),
            "stages_s": {k: round(v, 1) for k, v in t.items()},
            "tiles_per_s": round(manifest["plan"]["tiles"] / t["tiles_s"], 3),
            "km2_per_s": round(manifest["km2_processed"] / wall, 1), "driver_peak_rss_gb": round(rss_gb, 2),
            "glaciers": manifest["glaciers"], "merged_glaciers": manifest["merged_glaciers"],
            "glaciers_crossing_zone_line": crossing, "pairs_sharing_an_edge": shared,
            "closest_pair_across_zone_line_px": round(min(near), 2) if near else None,
            "iou_vs_truth_per_zone": {str(k): round(v, 4) for k, v in ious.items()},
            "compared": compared,
        }
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
