"""The work plan of a regional run: one search, items assigned to tiles, costs per tile; no pixel read.

:func:`plan_region` searches the STAC API once per sensor for the AOI (paged to the end: no
silent cap), lays the fixed tiling of :mod:`glacierxr.tiles` over the AOI, gives every tile the
items whose footprints meet its grid (core + margin), and says per tile what it will cost:
chunks and the size of the task graph that tile builds when it runs. The driver of a regional
run holds this plan and nothing bigger: a tile's graph is built only when the tile runs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from pyproj import Geod

from glacierxr.errors import EmptySearchError
from glacierxr.tiles import Tile, _square_ll, read_aoi, tiles_for

__all__ = ["TilePlan", "RegionPlan", "plan_region", "estimate_tasks"]

_GEOD = Geod(ellps="WGS84")

#: Graph tasks per (item, chunk) by sensor, per chunk and per tile: a linear fit (rounded up)
#: of built cube + predict + write graphs. :func:`plan_region` builds the graph of the largest
#: tile for real and scales the estimates of the others to it.
_TASKS_PER_ITEM_CHUNK = {"sentinel-2": 60.0, "sentinel-1": 30.0, "dem": 15.0}
_TASKS_PER_CHUNK = 45.0
_TASKS_PER_TILE = 150.0


def estimate_tasks(items_per_sensor: dict[str, int], chunks: int) -> int:
    """Estimated tasks of one tile's graph (cube, predict, Zarr write) for its items and chunks."""
    per_chunk = _TASKS_PER_CHUNK + sum(_TASKS_PER_ITEM_CHUNK.get(s, 60.0) * n for s, n in items_per_sensor.items())
    return int(math.ceil(_TASKS_PER_TILE + per_chunk * chunks))


@dataclass(frozen=True)
class TilePlan:
    """What one tile will read and cost."""

    tile: Tile
    """The tile (id, zone, bounds, grid)."""
    items: dict[str, tuple[str, ...]]
    """Item ids per sensor whose footprints meet the tile's grid."""
    chunks: int
    """Spatial chunks of the tile's grid."""
    tasks: int
    """Estimated task count of the tile's graph (see :func:`estimate_tasks`)."""
    km2: float
    """Geodesic area of the part of the core the tile owns (within its zone's strip)."""

    def to_dict(self) -> dict:
        """JSON-friendly description."""
        return {**self.tile.to_dict(), "items": {k: list(v) for k, v in self.items.items()}, "chunks": self.chunks,
                "tasks": self.tasks, "km2": round(self.km2, 3)}


@dataclass
class RegionPlan:
    """The plan of a regional run: tiles with their items and costs, and the searched items."""

    stac: str
    datetime: str
    tile_km: float
    margin_km: float
    resolution: float
    chunk: int
    sensors: tuple[str, ...]
    max_cloud: float | None
    aoi: np.ndarray = field(repr=False)
    """The AOI as lon/lat geometries."""
    tiles: list[TilePlan] = field(repr=False)
    items: dict[str, dict[str, dict]] = field(repr=False)
    """Searched items per sensor, by id, as STAC dicts (only those some tile uses)."""
    search_s: float = 0.0
    plan_s: float = 0.0

    def items_for(self, tile_plan: TilePlan) -> dict[str, list[dict]]:
        """The STAC item dicts of one tile, per sensor."""
        return {s: [self.items[s][i] for i in ids] for s, ids in tile_plan.items.items() if ids}

    @property
    def km2(self) -> float:
        """Area the tiles own in total (km², geodesic)."""
        return float(sum(t.km2 for t in self.tiles))

    def summary(self) -> dict:
        """The plan in one JSON-friendly dict: ``tiles``, ``epsg``, ``km2``, ``items``, ``max_tasks_per_tile``, ..."""
        return {
            "tiles": len(self.tiles),
            "epsg": sorted({t.tile.epsg for t in self.tiles}),
            "km2": round(self.km2, 1),
            "items": int(sum(len(v) for v in self.items.values())),
            "items_per_sensor": {k: len(v) for k, v in self.items.items()},
            "max_tasks_per_tile": max((t.tasks for t in self.tiles), default=0),
            "max_items_per_tile": max((sum(len(v) for v in t.items.values()) for t in self.tiles), default=0),
            "chunks_per_tile": max((t.chunks for t in self.tiles), default=0),
            "tile_km": float(self.tile_km),
            "margin_km": float(self.margin_km),
            "resolution_m": float(self.resolution),
            "search_s": round(self.search_s, 2),
            "plan_s": round(self.plan_s, 2),
        }

    def estimate_s(self, workers: int, km2_per_s_per_worker: float) -> float:
        """Run-time estimate in seconds for ``workers`` at a throughput per worker (km²/s)."""
        return self.km2 / max(workers * km2_per_s_per_worker, 1e-12)

    def to_json(self) -> str:
        """The summary and every tile, as JSON text."""
        return json.dumps({**self.summary(), "tile_list": [t.to_dict() for t in self.tiles]}, indent=1)

    def write_map(self, path: str | Path, *, size: int = 1024) -> Path:
        """A PNG map of the tiles (coloured by UTM zone) over the AOI, in lon/lat."""
        from PIL import Image, ImageDraw

        geoms = [t.tile.footprint for t in self.tiles]
        w, s, e, n = shapely.total_bounds(np.array([*geoms, *self.aoi]))
        pad = 0.02 * max(e - w, n - s)
        w, s, e, n = w - pad, s - pad, e + pad, n + pad
        kx = math.cos(math.radians((s + n) / 2))
        scale = size / max((e - w) * kx, n - s)
        width, height = max(int((e - w) * kx * scale), 1), max(int((n - s) * scale), 1)
        img = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(img)

        def xy(ring) -> list[tuple[float, float]]:
            c = np.asarray(ring.coords)
            return [((x - w) * kx * scale, (n - y) * scale) for x, y in c[:, :2]]

        palette = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
                   (227, 119, 194), (127, 127, 127)]
        zones = sorted({t.tile.epsg for t in self.tiles})
        for t, g in zip(self.tiles, geoms, strict=True):
            colour = palette[zones.index(t.tile.epsg) % len(palette)]
            for part in getattr(g, "geoms", [g]):
                if part.geom_type == "Polygon":
                    draw.polygon(xy(part.exterior), fill=tuple(int(255 - 0.25 * (255 - c)) for c in colour), outline=colour)
        for g in self.aoi:
            for part in getattr(g, "geoms", [g]):
                if part.geom_type == "Polygon":
                    draw.line(xy(part.exterior), fill=(0, 0, 0), width=2)
        draw.text((6, 4), f"{len(self.tiles)} tiles of {self.tile_km:g} km, EPSG {', '.join(map(str, zones))}",
                  fill=(0, 0, 0))
        out = Path(path)
        img.save(out)
        return out


def _footprint(item: dict) -> shapely.Geometry:
    geom = item.get("geometry")
    if geom:
        return shapely.geometry.shape(geom)
    return shapely.box(*item["bbox"])


def plan_region(
    stac: str,
    *,
    aoi: object,
    datetime: str,
    tile_km: float = 100.0,
    margin_km: float = 2.0,
    buffer_km: float = 0.0,
    resolution: float = 10.0,
    chunk: int = 2048,
    sensors: Sequence[str] = ("sentinel-2", "dem"),
    max_cloud: float | None = None,
    max_items: int | None = None,
    bands: Sequence[str] = ("B03", "B04", "B08", "B11"),
    exact_max: bool = True,
) -> RegionPlan:
    """Plan a regional run: one search for the AOI, items assigned to tiles, costs per tile.

    Parameters
    ----------
    stac
        STAC API URL or provider preset.
    aoi
        ``(west, south, east, north)`` in degrees, a lon/lat geometry, a GeoDataFrame, or the
        path of a vector file (RGI outlines, a mountain-range polygon); see
        :func:`glacierxr.tiles.read_aoi`.
    datetime
        Date window, e.g. ``"2023-07-15/2023-09-30"``.
    tile_km, margin_km, buffer_km, resolution
        Tile size (it must nest in the 100 km pattern), margin around each tile's core, growth
        of the AOI, and pixel size in metres (see :func:`glacierxr.tiles.tiles_for`).
    chunk
        Spatial chunk size in pixels within a tile.
    sensors
        Sensors to search.
    max_cloud
        Maximum scene cloud cover in percent.
    max_items
        Cap on items per sensor; ``None`` (default) pages to the end. A search that hits a cap
        warns (:class:`glacierxr.errors.SearchLimitWarning`).
    bands
        The model's bands (they decide the predict graph).
    exact_max
        Build the graph of the largest tile (no pixel is read) so that ``max_tasks_per_tile``
        is a count, not an estimate; the other tiles' estimates are scaled to it.

    Returns
    -------
    RegionPlan
        Tiles that meet the AOI and hold data, with items and costs; nothing is read.

    Raises
    ------
    EmptySearchError
        When a sensor has no item anywhere in the AOI.
    InvalidArgumentError, InvalidBBoxError
        On a bad AOI, tile size or margin.
    """
    import glacierxr as gx
    from glacierxr.tiles import check_tile_km

    check_tile_km(tile_km, resolution, margin_km)
    t0 = time.perf_counter()
    geoms = read_aoi(aoi, buffer_km=buffer_km)
    tiles = tiles_for(geoms, tile_km=tile_km, margin_km=margin_km, resolution=resolution, buffer_km=buffer_km)
    footprints = np.array([t.footprint for t in tiles]) if tiles else geoms
    w, s, e, n = shapely.total_bounds(footprints)
    where: dict = {"bbox": (max(w, -180), max(s, -90), min(e, 180), min(n, 90))}
    hull = shapely.convex_hull(shapely.multipolygons(list(footprints)) if tiles else shapely.union_all(geoms))
    if hull.area < 0.9 * shapely.box(*where["bbox"]).area:  # a polygon AOI: ask only for what its tiles need
        where = {"intersects": shapely.geometry.mapping(shapely.segmentize(hull, 1.0))}
    t_search = time.perf_counter()
    found = gx.search(stac, datetime=datetime, sensors=tuple(sensors), max_cloud=max_cloud, max_items=max_items,
                      **where)
    search_s = time.perf_counter() - t_search
    dicts = {name: [it.to_dict(transform_hrefs=False) for it in coll] for name, coll in found.items()}
    trees = {name: shapely.STRtree([_footprint(d) for d in ds]) for name, ds in dicts.items()}
    dicts_by_id = {name: {d["id"]: d for d in ds} for name, ds in dicts.items()}
    plans, used = [], {name: set() for name in dicts}
    for tile in tiles:
        g = tile.grid
        probe = _square_ll(tile.epsg, g.bounds)
        ids = {}
        for name, ds in dicts.items():
            hits = np.sort(trees[name].query(probe, predicate="intersects"))
            ids[name] = tuple(ds[i]["id"] for i in hits)
            used[name].update(int(i) for i in hits)
        if not any(ids.get(s_) for s_ in sensors if s_ != "dem"):
            continue  # nothing to map here (e.g. the sea, or beyond the imagery)
        per_side = [math.ceil(v / chunk) for v in g.shape]
        chunks = per_side[0] * per_side[1]
        km2 = abs(_GEOD.geometry_area_perimeter(tile.footprint)[0]) / 1e6
        plans.append(TilePlan(tile, ids, chunks, estimate_tasks({k: len(v) for k, v in ids.items()}, chunks), km2))
    if plans and exact_max:
        # the largest tile's graph, built for real (no pixel is read): the bound the plan states
        big = max(range(len(plans)), key=lambda k: plans[k].tasks)
        from glacierxr.tilework import graph_tasks

        exact = graph_tasks(plans[big].tile, {k: [dicts_by_id[k][i] for i in v] for k, v in plans[big].items.items() if v},
                            bands=bands, chunk=chunk)
        scale = exact / plans[big].tasks
        plans = [TilePlan(p.tile, p.items, p.chunks, exact if k == big else int(math.ceil(p.tasks * scale)), p.km2)
                 for k, p in enumerate(plans)]
    if not plans:
        raise EmptySearchError(
            f"No tile of the AOI holds imagery for {datetime}: every tile lacks {', '.join(s_ for s_ in sensors if s_ != 'dem')} "
            "items. Widen the dates or check the AOI's coordinates (lon/lat order)."
        )
    kept = {name: {ds[i]["id"]: ds[i] for i in sorted(used[name])} for name, ds in dicts.items()}
    return RegionPlan(stac, datetime, float(tile_km), float(margin_km), float(resolution), int(chunk), tuple(sensors),
                      max_cloud, geoms, plans, kept, search_s, time.perf_counter() - t0)
