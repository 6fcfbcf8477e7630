"""Merge the tiles of a regional run: glaciers across tile borders and UTM zone lines become one.

The pieces (:mod:`glacierxr.tilework`) are stitched in two steps:

1. **Inside a zone** the pieces of all tiles are in one pixel lattice, so pieces that share an
   edge are joined exactly (the same union of edge-sharing pieces that stitches chunks in
   :mod:`glacierxr.vectorize`). A glacier cut by tile borders is then the polygon that one big
   tile would have given.
2. **Across a zone line** the two zones' pixel grids do not coincide. Each zone's pieces are
   taken to lon/lat and clipped at the zone's meridian, where both sides then have edges *on*
   the same straight line (longitude = the zone line); pieces sharing a stretch of it are
   joined. What cannot be exact there: each side's pixels end within half a pixel of the line
   at the glacier's sides, so the outline can show a notch of up to half a pixel where it
   crosses the line.

Merged glaciers then take the steps whole glaciers take in
:func:`glacierxr.tilework.finish_glaciers` (the same canonical lattice polygon, the same hole
filling, the same lattice -> lon/lat transform, the geodesic area filter), so a glacier comes out
identical whether a tile held it whole or the merge joined it; their attributes are computed
from the DEM afterwards, in parallel, each from a small DEM cube around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from glacierxr.divides import GRID_M
from glacierxr.tiles import zone_strip
from glacierxr.tilework import fill_holes_px, geodesic_km2, lattice_to_lonlat, tile_dir
from glacierxr.vectorize import _stitch, canonical

__all__ = ["merge_pieces", "attributes_of"]


def _union_find(n: int, pairs) -> list[list[int]]:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values())


def _read_pieces(run_dir: Path, tile_ids: Sequence[str]) -> pd.DataFrame:
    frames = [pd.read_parquet(tile_dir(run_dir, t) / "pieces.parquet") for t in sorted(tile_ids)]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({"wkb": [], "sum": [], "count": [], "tile_id": []})
    return pd.concat(frames, ignore_index=True)


def merge_pieces(run_dir: str | Path, tiles: Sequence, *, min_area_km2: float, min_hole_km2: float):
    """Stitch the pieces of every tile of a run into glaciers (see the module docstring).

    Parameters
    ----------
    run_dir
        The run folder (``tiles/<id>/pieces.parquet`` inside).
    tiles
        The run's :class:`~glacierxr.tiles.Tile` objects.
    min_area_km2, min_hole_km2
        Smallest glacier kept and smallest hole kept (geodesic / pixel area).

    Returns
    -------
    geopandas.GeoDataFrame
        Merged glaciers in EPSG:4326 with ``mean_probability`` and ``zone_epsg`` (the zone whose
        DEM grid their attributes are computed on), without the inventory attributes yet.
    """
    import geopandas as gpd

    run_dir = Path(run_dir)
    by_id = {t.id: t for t in tiles}
    pieces = _read_pieces(run_dir, list(by_id))
    if not len(pieces):
        return gpd.GeoDataFrame({"mean_probability": [], "zone_epsg": []}, geometry=[], crs="EPSG:4326")
    pieces["zone"] = [by_id[t].zone for t in pieces["tile_id"]]
    resolution = next(iter(by_id.values())).resolution
    # 1. inside each zone's lattice: exact
    lons, sums, counts, epsgs, lines = [], [], [], [], []
    for zone, group in pieces.groupby("zone", sort=True):
        geoms = shapely.from_wkb(group["wkb"].to_numpy())
        # the lattice is shared by both hemispheres of a zone: the northern CRS places it
        epsg = 32600 + int(zone)
        stitched = _stitch([(g, 0, s, c, True) for g, s, c in zip(geoms, group["sum"], group["count"], strict=True)])
        polys = [canonical(p[0]) for p in stitched]
        filled = np.array([fill_holes_px(p, min_hole_km2 * 1e6 / resolution**2) for p in polys], dtype=object)
        ll = lattice_to_lonlat(filled, epsg, resolution)
        west, _, east, _ = zone_strip(epsg)
        for g, (_, _, s, c, _) in zip(ll, stitched, strict=True):
            x0, _, x1, _ = g.bounds
            on_line = x0 <= west or x1 >= east
            if on_line:
                g = shapely.clip_by_rect(g, west, -90.0, east, 90.0)
                if g.is_empty:
                    continue
            lons.append(g)
            sums.append(s)
            counts.append(c)
            epsgs.append(epsg)
            lines.append(on_line)
    # 2. across zone lines: pieces whose edges lie on the same meridian
    geoms = np.array(lons, dtype=object)
    idx = np.flatnonzero(lines)
    pairs = []
    if len(idx) > 1:
        tree = shapely.STRtree(geoms[idx])
        a, b = tree.query(geoms[idx], predicate="intersects")
        for i, j in zip(a, b, strict=True):
            gi, gj = idx[i], idx[j]
            if gi < gj and epsgs[gi] != epsgs[gj] and geoms[gi].intersection(geoms[gj]).length > 0:
                pairs.append((gi, gj))
    out_geoms, out_mean, out_epsg = [], [], []
    for members in _union_find(len(geoms), pairs):
        g = geoms[members[0]] if len(members) == 1 else shapely.union_all(geoms[members])
        s = sum(sums[i] for i in members)
        c = sum(counts[i] for i in members)
        rep = shapely.point_on_surface(g)
        zone_epsg = (32600 if rep.y >= 0 else 32700) + min(int((rep.x + 180) // 6) + 1, 60)
        out_geoms.append(shapely.normalize(g))
        out_mean.append(s / max(c, 1))
        out_epsg.append(zone_epsg)
    frame = gpd.GeoDataFrame({"mean_probability": np.array(out_mean, dtype="float32"), "zone_epsg": out_epsg},
                             geometry=out_geoms, crs="EPSG:4326")
    return frame[geodesic_km2(frame.geometry.values) >= min_area_km2].reset_index(drop=True)


def attributes_of(glaciers, dem_items: Sequence[dict], *, resolution: float, date: str | None,
                  dem_source: str | None, reader: type | None = None, split: bool = False):
    """RGI-style attributes of merged glaciers, each from a small DEM cube around it.

    The DEM is put on the glacier's zone grid at the run's resolution (the grid a tile would
    have used), so a merged glacier is measured, and with ``split`` split at its ice divides,
    like a whole one: the cube reaches past the glacier by more than the split's window.
    """
    import dask
    import geopandas as gpd

    import glacierxr as gx
    from glacierxr.tilework import with_attributes

    if not len(glaciers):
        return glaciers
    rows = []
    footprints = shapely.STRtree([shapely.geometry.shape(d["geometry"]) if d.get("geometry") else shapely.box(*d["bbox"])
                                  for d in dem_items])
    with dask.config.set(scheduler="threads"):
        for i in range(len(glaciers)):
            one = glaciers.iloc[[i]]
            g = one.geometry.iloc[0]
            w, s, e, n = g.bounds
            pad = max(3 * resolution, 4 * GRID_M) / 111_000.0  # covers the split's cells (divides._cell_window)
            box = (w - pad, s - pad, e + pad, n + pad)
            items = [dem_items[k] for k in np.sort(footprints.query(shapely.box(*box), predicate="intersects"))]
            if not items:
                rows.append(with_attributes(one, _empty_dem(one, resolution), date=date, dem_source=dem_source,
                                            split=split))
                continue
            cube = gx.open_cube({"dem": items}, bbox=box, resolution=resolution, crs=f"EPSG:{int(one['zone_epsg'].iloc[0])}",
                                chunks=4096, indices=False, reader=reader)
            rows.append(with_attributes(one, cube["elevation"].compute(), date=date, dem_source=dem_source,
                                        split=split))
    return gpd.GeoDataFrame(pd.concat(rows), geometry="geometry", crs="EPSG:4326")


def _empty_dem(one, resolution: float):
    import rioxarray  # noqa: F401
    import xarray as xr

    w, s, e, n = one.geometry.iloc[0].bounds
    return xr.DataArray(np.full((2, 2), np.nan, np.float32), dims=("y", "x"),
                        coords={"y": [n, s], "x": [w, e]}).rio.write_crs("EPSG:4326")
