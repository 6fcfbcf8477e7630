"""Seeded, metadata-only Earth Search v1 STAC catalogues at mountain-range scale.

:func:`write_catalog` writes realistic Sentinel-2 L2A and Copernicus DEM GLO-30 items for any
lon/lat box (High Mountain Asia fits in seconds) in the layout :func:`glacierxr.stac_server.serve`
reads: one ``<collection>/collection.json`` + ``items.ndjson`` per collection. No raster is
written: every asset href uses the ``generated://`` scheme that
:class:`glacierxr.testing.generated.GeneratedReader` turns into pixels, so a whole mountain range
can be planned, searched and (at coarse resolution) stacked without a byte of imagery.

Layout of the items
-------------------
Sentinel-2 (collection ``sentinel-2-l2a``)
    The MGRS / Sentinel-2 tiling: per UTM zone (6 degree strips, north and south), 109.8 km
    square tiles whose upper-left corners sit on the 100 km easting/northing grid (eastings
    ``100000 * k`` for k = 1..8, shifted 0/-40/-20 m like the real grid; northings ``100000 *
    m``), named like the real tiles (``43SDV``: zone, latitude band, 100 km square letters). A
    tile exists when its square intersects its zone's strip widened by ``ZONE_MARGIN_DEG``
    (real tiles overlap neighbouring zones by some tens of km); footprints are not clipped and is listed
    when its footprint intersects the requested box.
    Each tile gets 3-6 acquisitions in the window on a 5-day revisit whose phase depends on the
    longitude (neighbouring tiles of one orbit share dates); ~15 % of acquisitions lie at a
    swath edge and cover only part of the tile (footprint and href say which part). Assets
    ``blue green red nir`` (10 m, 10980 x 10980) and ``swir16 scl`` (20 m, 5490 x 5490) carry
    ``proj:shape``/``proj:transform``/``raster:bands`` exactly as Earth Search v1 does (scale
    0.0001, offset -0.1, nodata 0; ``s2:processing_baseline`` "05.09").
DEM (collection ``cop-dem-glo-30``)
    One 1 x 1 degree tile per integer degree cell intersecting the box, ids like
    ``Copernicus_DSM_COG_10_N35_00_E074_00_DEM``, EPSG:4326, 3600 rows and 3600 columns (fewer
    columns above 50 degrees, as GLO-30 does), pixel-centre registered (origin half a pixel out).

The ``generated://`` href
-------------------------
``generated://<collection>/<item id>/<asset>.tif?`` followed by URL query parameters:

``band``
    What to generate: ``blue green red nir swir16 scl`` or ``dem``.
``epsg``, ``bounds``
    The asset's CRS and its ``minx,miny,maxx,maxy`` in that CRS; outside it the reader returns
    the fill value.
``lon``
    Optional ``west,east`` longitude limits of the valid data (swath edges).
``scale``, ``offset``, ``nodata``
    How the stored DNs relate to physical values (``physical = DN * scale + offset``): the
    reader returns DNs ``round((physical - offset) / scale)``. The offset is the one glacierxr
    applies to the item (see :func:`glacierxr.sensors.scale_offset`), so the cube's physical
    values equal the generated field whatever ``earthsearch:boa_offset_applied`` says.
``date``, ``seed``
    Acquisition date (clouds depend on it) and the world seed (the glacier field depends only on
    it and the position, never on the item).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np

from glacierxr.errors import InvalidArgumentError
from glacierxr.geo import validate_bbox
from glacierxr.search import validate_datetime

__all__ = [
    "write_catalog", "s2_tiles", "s2_items", "dem_items", "S2_ASSETS", "SCHEME", "utm_epsg",
    "KARAKORAM_BBOX", "HMA_BBOX",
]

#: The href scheme read by :class:`glacierxr.testing.generated.GeneratedReader`.
SCHEME = "generated"
#: High Mountain Asia (lon/lat), the scale target: ~6,200 S2 items and 760 DEM tiles in late summer.
HMA_BBOX = (67.0, 26.0, 105.0, 46.0)
#: About 600 km x 600 km of the Karakoram and Pamir, across UTM zones 43 and 44.
KARAKORAM_BBOX = (73.0, 33.5, 79.5, 38.9)

#: Earth Search v1 asset key -> (band name, resolution m, eo common name, centre wavelength um, fwhm).
S2_ASSETS: dict[str, tuple[str, int, str | None, float | None, float | None]] = {
    "blue": ("B02", 10, "blue", 0.49, 0.098),
    "green": ("B03", 10, "green", 0.56, 0.045),
    "red": ("B04", 10, "red", 0.665, 0.038),
    "nir": ("B08", 10, "nir", 0.842, 0.145),
    "swir16": ("B11", 20, "swir16", 1.61, 0.143),
    "scl": ("SCL", 20, None, None, None),
}
_TITLES = {
    "blue": "Blue (band 2) - 10m", "green": "Green (band 3) - 10m", "red": "Red (band 4) - 10m",
    "nir": "NIR 1 (band 8) - 10m", "swir16": "SWIR 1 (band 11) - 20m", "scl": "Scene classification map (SCL)",
}
_TILE_M = 109_800.0
_BAND_LETTERS = "CDEFGHJKLMNPQRSTUVWX"  # 8 degree latitude bands from 80 S
_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"  # 100 km row letters (20-cycle)
_COL_SETS = ("STUVWXYZ", "ABCDEFGH", "JKLMNPQR")  # by zone % 3
_EXT = {
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "grid": "https://stac-extensions.github.io/grid/v1.0.0/schema.json",
    "mgrs": "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "view": "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "processing": "https://stac-extensions.github.io/processing/v1.1.0/schema.json",
}


def utm_epsg(zone: int, north: bool) -> int:
    """EPSG code of UTM ``zone`` (1..60) in the northern (326zz) or southern (327zz) hemisphere."""
    return (32600 if north else 32700) + int(zone)


def _transformer(epsg: int):
    from pyproj import Transformer

    return Transformer.from_crs(epsg, 4326, always_xy=True)


_TRANSFORMERS: dict[int, Any] = {}


def _to_lonlat(epsg: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if epsg not in _TRANSFORMERS:
        _TRANSFORMERS[epsg] = _transformer(epsg)
    return _TRANSFORMERS[epsg].transform(x, y)


def _ring(x0: float, y0: float, x1: float, y1: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A closed, counter-clockwise rectangle ring with ``n`` segments per side."""
    t = np.linspace(0, 1, n, endpoint=False)
    xs = np.concatenate([x0 + (x1 - x0) * t, np.full(n, x1), x1 - (x1 - x0) * t, np.full(n, x0), [x0]])
    ys = np.concatenate([np.full(n, y0), y0 + (y1 - y0) * t, np.full(n, y1), y1 - (y1 - y0) * t, [y0]])
    return xs, ys


def _tile_name(zone: int, north: bool, k: int, m: int, lat: float) -> str:
    band = _BAND_LETTERS[min(max(int((lat + 80) // 8), 0), len(_BAND_LETTERS) - 1)]
    col = _COL_SETS[zone % 3][k - 1]
    row = _ROW_LETTERS[(m + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone:02d}{band}{col}{row}"


#: Degrees a tile may lie beyond its zone's strip and still exist (real MGRS tiles overlap
#: neighbouring zones); 0.3 makes High Mountain Asia hold ~1,100 tiles.
ZONE_MARGIN_DEG = 0.3


def s2_tiles(bbox: Sequence[float], *, zone_margin_deg: float = ZONE_MARGIN_DEG) -> list[dict]:
    """The Sentinel-2 (MGRS) tiles whose footprint intersects ``bbox``.

    Parameters
    ----------
    bbox
        ``(west, south, east, north)`` in degrees; it must not cross the antimeridian.
    zone_margin_deg
        A tile exists when it intersects its zone's 6 degree strip widened by this much.

    Returns
    -------
    list[dict]
        One dict per tile: ``name`` (e.g. ``"43SDV"``), ``zone``, ``north``, ``epsg``, ``bounds``
        (native ``minx, miny, maxx, maxy``), ``ulx``/``uly`` and ``geometry`` (lon/lat shapely polygon).
    """
    from shapely.geometry import Polygon, box

    w, s, e, n = validate_bbox(bbox)
    aoi = box(w, s, e, n)
    out = []
    s, n = max(s, -80.0), min(n, 84.0)
    if s >= n:
        return out
    for zone in range(int((w + 180) // 6) + 1, min(int((e + 180) // 6) + 1, 60) + 1):
        zw = -180.0 + 6 * (zone - 1)
        strip = box(zw - zone_margin_deg, -80.0, zw + 6.0 + zone_margin_deg, 84.0)
        for north in (True, False):
            lo, hi = (max(s, 0.0), n) if north else (s, min(n, 0.0))
            if lo >= hi and not (north and lo == hi == 0.0):
                continue
            epsg = utm_epsg(zone, north)
            false_n = 0.0 if north else 10_000_000.0
            # northing rows spanning [lo, hi] (1 degree ~ 110.6-111.7 km, generous margins)
            m0 = int(math.floor((lo * 110_574 + false_n) / 100_000)) - 2
            m1 = int(math.ceil((hi * 111_694 + false_n) / 100_000)) + 2
            for m in range(max(m0, 0), m1 + 1):
                uly = 100_000.0 * m
                for k in range(1, 9):
                    ulx = 100_000.0 * k + (0.0, -40.0, -20.0)[k % 3]
                    x0, y0, x1, y1 = ulx, uly - _TILE_M, ulx + _TILE_M, uly
                    if not north and y1 > 10_000_000.0 + 1:
                        continue
                    if north and y0 < -9_800:
                        continue
                    xs, ys = _ring(x0, y0, x1, y1, 4)
                    lon, lat = _to_lonlat(epsg, xs, ys)
                    poly = Polygon(np.column_stack([lon, lat]))
                    if not poly.intersects(strip) or poly.intersection(strip).area < 1e-3:
                        continue
                    # a tile belongs to the hemisphere of its centre
                    clat = float(np.mean(lat[:-1]))
                    if (clat >= 0) != north or not poly.intersects(aoi):
                        continue
                    out.append(dict(
                        name=_tile_name(zone, north, k, m, clat), zone=zone, north=north, epsg=epsg,
                        bounds=(x0, y0, x1, y1), ulx=ulx, uly=uly, geometry=poly,
                        lon_range=(float(lon.min()), float(lon.max())), centre_lon=float(np.mean(lon[:-1])),
                        centre_lat=clat,
                    ))
    return out


def _round(values: Sequence[float], nd: int = 9) -> list[float]:
    return [round(float(v), nd) for v in values]


def _href(collection: str, iid: str, asset: str, **query: Any) -> str:
    return f"{SCHEME}://{collection}/{iid}/{asset}.tif?" + urlencode({k: v for k, v in query.items() if v is not None})


def _acquisition_dates(rng: np.random.Generator, start: dt.date, end: dt.date, lon: float,
                       dates_per_tile: tuple[int, int]) -> list[dt.date]:
    """5-day revisit dates for a tile, phase set by longitude; a seeded subset of them."""
    phase = int(math.floor((lon + 180.0) / 2.3)) % 5  # ground tracks ~2.3 degrees apart per day
    first = start + dt.timedelta(days=(phase - start.toordinal()) % 5)
    all_dates = []
    d = first
    while d <= end:
        all_dates.append(d)
        d += dt.timedelta(days=5)
    lo, hi = dates_per_tile
    n = int(rng.integers(lo, hi + 1)) if rng.random() > 0.08 else int(rng.integers(max(1, lo - 3), lo + 1))
    n = min(n, len(all_dates))
    if n <= 0:
        return []
    idx = np.sort(rng.choice(len(all_dates), size=n, replace=False))
    return [all_dates[i] for i in idx]


def s2_items(
    bbox: Sequence[float],
    datetime: str = "2023-07-15/2023-09-30",
    *,
    seed: int = 0,
    dates_per_tile: tuple[int, int] = (5, 6),
    partial_fraction: float = 0.15,
    boa_offset_applied: bool = False,
    world: str = "range",
) -> list[dict]:
    """Earth Search v1 ``sentinel-2-l2a`` item dicts for every tile and date intersecting the box.

    Parameters
    ----------
    bbox
        ``(west, south, east, north)`` in degrees.
    datetime
        ``"START/END"`` window (both ends required).
    seed
        Seeds dates, cloud cover, partial coverage and the world field named in the hrefs.
    dates_per_tile
        ``(fewest, most)`` acquisitions per tile (a few tiles get fewer still).
    partial_fraction
        Share of acquisitions at a swath edge covering only part of the tile.
    boa_offset_applied
        Value of ``earthsearch:boa_offset_applied``. ``False`` (default) makes glacierxr apply
        the ``raster:bands`` offset -0.1, so the generated DNs are ``(reflectance + 0.1) * 1e4``;
        ``True`` (what Earth Search v1 says for most 2023 scenes) makes it apply 0.

    Returns
    -------
    list[dict]
        Item dicts, tile by tile, dates ascending.
    """
    start, end = validate_datetime(datetime)
    if start is None or end is None:
        raise InvalidArgumentError(f"datetime={datetime!r} must have both ends for generated items.")
    lo, hi = dates_per_tile
    if not (1 <= lo <= hi):
        raise InvalidArgumentError(f"dates_per_tile={dates_per_tile!r} must be (fewest, most) with 1 <= fewest <= most.")
    offset = 0.0 if boa_offset_applied else -0.1
    from shapely.geometry import Polygon, box

    aoi = box(*validate_bbox(bbox))
    items = []
    for tile in s2_tiles(bbox):
        tseed = [seed, tile["zone"], int(tile["north"]), int(tile["ulx"]), int(tile["uly"])]
        rng = np.random.default_rng(tseed)
        x0, y0, x1, y1 = tile["bounds"]
        xs, ys = _ring(x0, y0, x1, y1, 8)
        tlon, tlat = _to_lonlat(tile["epsg"], xs, ys)
        for date in _acquisition_dates(rng, start, end, tile["centre_lon"], (lo, hi)):
            sat = "sentinel-2a" if (date.toordinal() + int(tile["centre_lon"] // 2.3)) % 2 else "sentinel-2b"
            iid = f"S2{sat[-1].upper()}_{tile['name']}_{date:%Y%m%d}_0_L2A"
            lon_clip = None
            lon, lat = tlon, tlat
            if rng.random() < partial_fraction:  # swath edge: keep the west or the east part
                a, b = tile["lon_range"]
                cut = a + (b - a) * float(rng.uniform(0.2, 0.8))
                lon_clip = (a - 1.0, cut) if rng.random() < 0.5 else (cut, b + 1.0)
                part = Polygon(np.column_stack([tlon, tlat])).intersection(box(lon_clip[0], -90, lon_clip[1], 90))
                if part.is_empty or part.geom_type != "Polygon" or not part.intersects(aoi):
                    continue  # the swath edge left nothing of this tile inside the box
                coords = np.asarray(part.exterior.coords)
                lon, lat = coords[:, 0], coords[:, 1]
            if lon_clip is None and not Polygon(np.column_stack([lon, lat])).intersects(aoi):
                continue
            cloud = float(np.round(min(100.0, rng.gamma(0.6, 12.0)), 6))
            hour = 10.5 - tile["centre_lon"] / 15.0
            t = dt.datetime.combine(date, dt.time()) + dt.timedelta(hours=hour % 24)
            stamp = t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            assets = {}
            for key, (band, res, common, wl, fwhm) in S2_ASSETS.items():
                size = int(round(_TILE_M / res))
                is_scl = key == "scl"
                rb: dict = {"nodata": 0, "data_type": "uint8" if is_scl else "uint16"}
                if not is_scl:
                    rb["bits_per_sample"] = 15
                rb["spatial_resolution"] = res
                if not is_scl:
                    rb.update(scale=0.0001, offset=-0.1)
                href = _href(
                    "sentinel-2-l2a", iid, band, band=key, epsg=tile["epsg"],
                    bounds=",".join(f"{v:.0f}" for v in tile["bounds"]),
                    lon=None if lon_clip is None else ",".join(f"{v:.6f}" for v in lon_clip),
                    scale=None if is_scl else 0.0001, offset=None if is_scl else offset, nodata=0,
                    date=date.isoformat(), seed=seed, world=None if world == "range" else world,
                )
                a = {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                     "title": _TITLES[key]}
                if common:
                    a["eo:bands"] = [{"name": common, "common_name": common, "description": _TITLES[key].split(" - ")[0],
                                      "center_wavelength": wl, "full_width_half_max": fwhm}]
                    a["gsd"] = res
                a["proj:shape"] = [size, size]
                a["proj:transform"] = [res, 0, x0, 0, -res, y1]
                a["raster:bands"] = [rb]
                a["roles"] = ["data", "reflectance"]
                assets[key] = a
            band_letter = tile["name"][2]
            items.append({
                "type": "Feature", "stac_version": "1.0.0", "id": iid,
                "properties": {
                    "created": stamp, "platform": sat, "constellation": "sentinel-2", "instruments": ["msi"],
                    "eo:cloud_cover": cloud, "proj:epsg": tile["epsg"],
                    "mgrs:utm_zone": tile["zone"], "mgrs:latitude_band": band_letter, "mgrs:grid_square": tile["name"][3:],
                    "grid:code": f"MGRS-{tile['name']}",
                    "s2:nodata_pixel_percentage": 0.0 if lon_clip is None else round(float(rng.uniform(20, 80)), 6),
                    "s2:product_type": "S2MSI2A", "s2:processing_baseline": "05.09",
                    "s2:product_uri": (f"S2{sat[-1].upper()}_MSIL2A_{t:%Y%m%dT%H%M%S}_N0509_"
                                       f"R{int(tile['centre_lon'] // 2.3) % 143 + 1:03d}_T{tile['name']}_"
                                       f"{t:%Y%m%dT%H%M%S}.SAFE"),
                    "datetime": stamp, "s2:sequence": "0",
                    "earthsearch:boa_offset_applied": bool(boa_offset_applied),
                    "updated": stamp,
                },
                "geometry": {"type": "Polygon", "coordinates": [[_round(p) for p in zip(lon, lat, strict=True)]]},
                "bbox": _round([np.min(lon), np.min(lat), np.max(lon), np.max(lat)]),
                "stac_extensions": [_EXT[k] for k in ("processing", "grid", "raster", "proj", "mgrs", "eo")],
                "collection": "sentinel-2-l2a",
                "assets": assets, "links": [],
            })
    return items


def _dem_cols(lat_south: int) -> int:
    a = abs(lat_south + 0.5)
    for limit, cols in ((50, 3600), (60, 2400), (70, 1800), (80, 1200), (85, 720)):
        if a < limit:
            return cols
    return 360


def dem_items(bbox: Sequence[float], *, seed: int = 0, world: str = "range") -> list[dict]:
    """Copernicus DEM GLO-30 item dicts (``cop-dem-glo-30``), one per 1 degree cell in ``bbox``."""
    w, s, e, n = validate_bbox(bbox)
    items = []
    for lat in range(int(math.floor(s)), int(math.ceil(n)) if n > math.floor(s) else int(math.floor(s)) + 1):
        for lon in range(int(math.floor(w)), int(math.ceil(e)) if e > math.floor(w) else int(math.floor(w)) + 1):
            cols = _dem_cols(lat)
            dx, dy = 1.0 / cols, 1.0 / 3600
            x0, y1 = lon - dx / 2, lat + 1 + dy / 2
            x1, y0 = x0 + 1.0, y1 - 1.0
            ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
            iid = f"Copernicus_DSM_COG_10_{ns}{abs(lat):02d}_00_{ew}{abs(lon):03d}_00_DEM"
            href = _href("cop-dem-glo-30", iid, "data", band="dem", epsg=4326,
                         bounds=",".join(repr(round(v, 12)) for v in (x0, y0, x1, y1)), seed=seed,
                         world=None if world == "range" else world)
            items.append({
                "type": "Feature", "stac_version": "1.0.0", "id": iid,
                "properties": {
                    "platform": "tandem-x", "gsd": 30, "proj:epsg": 4326,
                    "proj:transform": [dx, 0, x0, 0, -dy, y1], "proj:shape": [3600, cols],
                    "proj:centroid": {"lat": lat + 0.5, "lon": lon + 0.5},
                    "grid:code": f"CDEM-{ns}{abs(lat):02d}{ew}{abs(lon):03d}",
                    "datetime": "2021-04-22T00:00:00Z",
                },
                "geometry": {"type": "Polygon", "coordinates": [[[x1, y0], [x1, y1], [x0, y1], [x0, y0], [x1, y0]]]},
                "bbox": [x0, y0, x1, y1],
                "stac_extensions": [_EXT["raster"], _EXT["grid"], _EXT["proj"]],
                "collection": "cop-dem-glo-30",
                "assets": {"data": {
                    "href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                    "title": "Data", "roles": ["data"],
                    "raster:bands": [{"sampling": "point", "data_type": "float32", "spatial_resolution": 30, "unit": "meter"}],
                }},
                "links": [],
            })
    return items


def _collection(cid: str, title: str, items: list[dict], interval: list[str | None], extensions: list[str]) -> dict:
    if items:
        b = np.array([it["bbox"] for it in items])
        bbox = _round([b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()])
    else:
        bbox = [-180.0, -90.0, 180.0, 90.0]
    return {
        "type": "Collection", "stac_version": "1.0.0", "stac_extensions": extensions, "id": cid, "title": title,
        "description": f"Generated metadata-only {title} items (glacierxr.testing.metadata); hrefs use generated://",
        "license": "proprietary", "links": [],
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}},
    }


def write_catalog(
    folder: str | Path,
    bbox: Sequence[float],
    datetime: str = "2023-07-15/2023-09-30",
    *,
    seed: int = 0,
    dates_per_tile: tuple[int, int] = (5, 6),
    partial_fraction: float = 0.15,
    boa_offset_applied: bool = False,
    dem: bool = True,
    sentinel2: bool = True,
    world: str = "range",
) -> dict:
    """Write a metadata-only Earth Search v1 catalogue for a lon/lat box, ready for ``serve``.

    Parameters
    ----------
    folder
        Output folder (created); gets ``sentinel-2-l2a/`` and ``cop-dem-glo-30/``, each with
        ``collection.json`` and ``items.ndjson``.
    bbox
        ``(west, south, east, north)`` in degrees.
    datetime
        ``"START/END"`` window of the Sentinel-2 acquisitions.
    seed
        Seeds everything random in the metadata and names the world field in the hrefs.
    dates_per_tile, partial_fraction, boa_offset_applied
        See :func:`s2_items`.
    dem, sentinel2
        Whether to write the Copernicus DEM tiles / the Sentinel-2 items (two calls with one each
        may share a folder).
    world
        The generated world the hrefs name (:data:`glacierxr.testing.generated.WORLDS`):
        ``"range"`` (mountain ranges) or ``"blobs"`` (thousands of small separate glaciers).

    Returns
    -------
    dict
        ``folder`` (Path), ``bbox``, ``datetime``, ``seed``, ``counts`` (items per collection),
        ``ids`` (item ids per collection), ``epsgs`` (S2 EPSG codes used), ``seconds`` (time taken).

    Examples
    --------
    >>> info = write_catalog(tmp / "stac", (73.3, 33.8, 80.0, 37.3))     # doctest: +SKIP
    >>> with serve(info["folder"]) as url:                              # doctest: +SKIP
    ...     items = gx.search(url, bbox=info["bbox"], datetime=info["datetime"], sensors=("sentinel-2", "dem"))
    """
    t0 = time.perf_counter()
    box = validate_bbox(bbox)
    out = Path(folder)
    s2 = s2_items(box, datetime, seed=seed, dates_per_tile=dates_per_tile, partial_fraction=partial_fraction,
                  boa_offset_applied=boa_offset_applied, world=world) if sentinel2 else []
    start, end = validate_datetime(datetime)
    collections = {}
    if sentinel2:
        collections["sentinel-2-l2a"] = (
            _collection("sentinel-2-l2a", "Sentinel-2 Level-2A", s2, [f"{start}T00:00:00Z", f"{end}T23:59:59Z"],
                        [_EXT["eo"], _EXT["proj"], _EXT["raster"]]), s2)
    if dem:
        d = dem_items(box, seed=seed, world=world)
        collections["cop-dem-glo-30"] = (_collection("cop-dem-glo-30", "Copernicus DEM GLO-30", d,
                                                     ["2021-04-22T00:00:00Z", None], [_EXT["proj"], _EXT["raster"]]), d)
    for cid, (coll, items) in collections.items():
        sub = out / cid
        sub.mkdir(parents=True, exist_ok=True)
        (sub / "collection.json").write_text(json.dumps(coll, indent=1))
        with (sub / "items.ndjson").open("w") as f:
            for it in items:
                f.write(json.dumps(it, separators=(",", ":")) + "\n")
    return {
        "folder": out, "bbox": box, "datetime": datetime, "seed": seed,
        "counts": {cid: len(items) for cid, (_, items) in collections.items()},
        "ids": {cid: [it["id"] for it in items] for cid, (_, items) in collections.items()},
        "epsgs": sorted({it["properties"]["proj:epsg"] for it in s2}),
        "seconds": time.perf_counter() - t0,
    }
