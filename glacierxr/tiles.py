"""Production tiles: a fixed global tiling of every UTM zone, and the tiles an AOI needs.

A production **tile** is a square of ``tile_km`` on its own UTM zone's easting/northing grid
(lower-left corner at whole multiples of the tile size from easting 0 / northing 0), processed
on that zone's pixel grid at the run's resolution with a ``margin`` around it. The tiling is
fixed and global: the same tile always has the same id (``32643_0600_3900``: EPSG code, then the
lower-left easting and northing in km), bounds and pixels, whatever the AOI, so runs over
overlapping regions share tiles and a resumed run finds its tiles again.

Which tile owns a pixel (the rule the merge relies on):

* Inside one zone, the tile cores tile the plane without overlap; every core edge lies on the
  zone's pixel lattice, so the pieces of a glacier cut by a core edge share that edge exactly.
* Each zone owns the pixels of its 6-degree strip (and hemisphere): a tile near a zone line
  keeps the pixels that reach into its strip, and the merge clips the polygons at the line
  itself (a straight line in lon/lat), where the two zones' pieces then share an exact edge.

The margin (default 2 km) is context for the model and the composite at the core's edge; it is
read and predicted, never written as output.

Special UTM zones (Norway's 32V, Svalbard's 31X-37X) are not used: every strip is 6 degrees.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import shapely
from pyproj import CRS, Transformer

from glacierxr.errors import GridError, InvalidArgumentError
from glacierxr.geo import Grid, validate_bbox

__all__ = ["Tile", "lattice_top", "zone_strip", "zones_of", "tiles_for", "read_aoi", "check_tile_km", "tile_from_id"]

#: Tile sizes must nest in this pattern: 100 km is a whole multiple of the size, or the size of 100 km.
PATTERN_KM = 100.0
#: Northing origin of the zone pixel lattice (rows count down from it in both hemispheres).
NORTHING_TOP = 10_000_000.0


def lattice_top(epsg: int) -> float:
    """Northing of row 0 of a zone's pixel lattice: 10,000 km north, 20,000 km south.

    A southern zone's northings are its northern twin's plus 10,000 km, so with these origins a
    point has the same lattice row in both: the equator is a lattice line, and tiles of the two
    hemispheres of one zone stitch like tiles of one grid.
    """
    return NORTHING_TOP * (2.0 if epsg // 100 == 327 else 1.0)


def check_tile_km(tile_km: float, resolution: float, margin_km: float) -> None:
    """Refuse tile sizes that do not nest in the 100 km pattern or the pixel lattice.

    Raises
    ------
    InvalidArgumentError
        When ``tile_km`` does not divide 100 km (or is not a multiple of it), is not a whole
        number of pixels, or the margin is negative or not a whole number of pixels.
    """
    for name, value in (("tile_km", tile_km), ("margin_km", margin_km)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidArgumentError(f"{name}={value!r} must be a number of kilometres, e.g. 100.")
    if tile_km <= 0 or margin_km < 0:
        raise InvalidArgumentError(f"tile_km={tile_km} must be > 0 and margin_km={margin_km} >= 0.")
    ratio = PATTERN_KM / tile_km if tile_km <= PATTERN_KM else tile_km / PATTERN_KM
    if abs(ratio - round(ratio)) > 1e-9:
        raise InvalidArgumentError(
            f"tile_km={tile_km} does not divide the {PATTERN_KM:g} km pattern; use a size that nests in it, "
            "e.g. 100, 50, 25, 20, 10, 5, 2.5 or 200."
        )
    for name, km in (("tile_km", tile_km), ("margin_km", margin_km)):
        px = km * 1000.0 / resolution
        if abs(px - round(px)) > 1e-6:
            raise InvalidArgumentError(
                f"{name}={km} is not a whole number of {resolution:g} m pixels; pick a multiple of {resolution / 1000:g} km."
            )


def zone_strip(epsg: int) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` in degrees of the strip a WGS 84 / UTM zone owns."""
    zone, south = epsg % 100, epsg // 100 == 327
    if not (epsg // 100 in (326, 327) and 1 <= zone <= 60):
        raise GridError(f"EPSG:{epsg} is not a WGS 84 / UTM zone (326xx or 327xx).")
    west = -180.0 + 6.0 * (zone - 1)
    return (west, -90.0, west + 6.0, 0.0) if south else (west, 0.0, west + 6.0, 90.0)


def zones_of(bounds: Sequence[float]) -> list[int]:
    """EPSG codes of the UTM zones whose strips a lon/lat box touches, west to east, north first."""
    w, s, e, n = bounds
    first, last = int((w + 180) // 6) + 1, min(int((e + 180) // 6) + 1, 60)
    if (e + 180) % 6 == 0 and e > w:  # a box ending exactly on a zone line does not enter the next zone
        last = max(first, last - 1)
    hemis = ([326] if n > 0 or s >= 0 else []) + ([327] if s < 0 else [])
    return [h * 100 + z for h in hemis for z in range(first, last + 1)]


def _fmt_km(metres: float) -> str:
    km = metres / 1000.0
    return f"{int(round(km)):04d}" if abs(km - round(km)) < 1e-9 else f"{km:06.1f}".rstrip("0")


@dataclass(frozen=True)
class Tile:
    """One production tile: a square core on a UTM zone's grid, processed with a margin."""

    epsg: int
    """EPSG code of the tile's UTM zone."""
    x0: float
    """Easting of the core's lower-left corner (m), a multiple of ``size_m``."""
    y0: float
    """Northing of the core's lower-left corner (m), a multiple of ``size_m``."""
    size_m: float
    """Side of the core in metres (``tile_km * 1000``)."""
    margin_m: float
    """Margin read and predicted around the core, in metres."""
    resolution: float
    """Pixel size in metres."""
    clip: tuple[float, float, float, float] | None = None
    """The part of the square that is processed, when the AOI covers only part of it (an edge
    tile): ``(xmin, ymin, xmax, ymax)`` on the pixel lattice. The id, the lattice and the
    pixels stay those of the square."""

    @property
    def id(self) -> str:
        """Stable id: ``EPSG_EASTINGkm_NORTHINGkm`` of the lower-left corner, e.g. ``32643_0600_3900``."""
        return f"{self.epsg}_{_fmt_km(self.x0)}_{_fmt_km(self.y0)}"

    @property
    def crs(self) -> CRS:
        """The zone's CRS."""
        return CRS.from_epsg(self.epsg)

    @property
    def square(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` of the tile's whole square in the zone's CRS."""
        return (self.x0, self.y0, self.x0 + self.size_m, self.y0 + self.size_m)

    @property
    def core_bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` of the processed core (the square, or its clipped part)."""
        return self.clip or self.square

    @property
    def core_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the core."""
        xmin, ymin, xmax, ymax = self.core_bounds
        return (round((ymax - ymin) / self.resolution), round((xmax - xmin) / self.resolution))

    @property
    def grid(self) -> Grid:
        """The pixel grid the tile is processed on: core plus margin."""
        m = self.margin_m
        xmin, ymin, xmax, ymax = self.core_bounds
        return Grid(crs=self.crs, resolution=self.resolution, bounds=(xmin - m, ymin - m, xmax + m, ymax + m))

    @property
    def margin_px(self) -> int:
        """The margin in pixels."""
        return round(self.margin_m / self.resolution)

    @property
    def zone(self) -> int:
        """The UTM zone number (1..60): both hemispheres of a zone share one pixel lattice."""
        return self.epsg % 100

    @property
    def origin_px(self) -> tuple[int, int]:
        """``(row, col)`` of the core's top-left pixel on the zone's lattice (see :func:`lattice_top`)."""
        xmin, _, _, ymax = self.core_bounds
        return (round((lattice_top(self.epsg) - ymax) / self.resolution), round(xmin / self.resolution))

    @cached_property
    def strip(self) -> tuple[float, float, float, float]:
        """The lon/lat strip the tile's zone owns (see :func:`zone_strip`)."""
        return zone_strip(self.epsg)

    @cached_property
    def footprint(self) -> shapely.Polygon:
        """The core in lon/lat (densified edges), clipped to the zone's strip: what the tile owns."""
        return _square_ll(self.epsg, self.core_bounds).intersection(shapely.box(*self.strip))

    @property
    def straddles_zone_line(self) -> bool:
        """Whether the core reaches beyond its zone's strip (its pixels are then clipped at the line)."""
        full = _square_ll(self.epsg, self.core_bounds)
        return not shapely.box(*self.strip).contains(full)

    def to_dict(self) -> dict:
        """JSON-friendly description (:meth:`from_dict` reads it back)."""
        return {"id": self.id, "epsg": self.epsg, "square": list(self.square), "bounds": list(self.core_bounds),
                "margin_m": self.margin_m, "resolution": self.resolution}

    @classmethod
    def from_dict(cls, d: dict) -> Tile:
        """The tile described by :meth:`to_dict`."""
        x0, y0, x1, _ = d["square"]
        clip = tuple(d["bounds"]) if list(d["bounds"]) != list(d["square"]) else None
        return cls(int(d["epsg"]), float(x0), float(y0), float(x1 - x0), float(d["margin_m"]), float(d["resolution"]), clip)


def tile_from_id(tile_id: str, *, tile_km: float, margin_km: float, resolution: float) -> Tile:
    """The tile with id ``tile_id`` (see :attr:`Tile.id`)."""
    try:
        epsg, e, n = tile_id.split("_")
        return Tile(int(epsg), float(e) * 1000.0, float(n) * 1000.0, tile_km * 1000.0, margin_km * 1000.0, resolution)
    except ValueError:
        raise InvalidArgumentError(f"{tile_id!r} is not a tile id such as '32643_0600_3900'.") from None


def _square_ll(epsg: int, bounds: Sequence[float], points_per_side: int = 16) -> shapely.Polygon:
    """A UTM rectangle in lon/lat with densified edges."""
    xmin, ymin, xmax, ymax = bounds
    t = np.linspace(0.0, 1.0, points_per_side, endpoint=False)
    xs = np.concatenate([xmin + (xmax - xmin) * t, np.full_like(t, xmax), xmax - (xmax - xmin) * t, np.full_like(t, xmin)])
    ys = np.concatenate([np.full_like(t, ymin), ymin + (ymax - ymin) * t, np.full_like(t, ymax), ymax - (ymax - ymin) * t])
    lon, lat = _to_ll(epsg).transform(xs, ys)
    return shapely.Polygon(np.column_stack([lon, lat]))


def _to_ll(epsg: int) -> Transformer:
    return Transformer.from_crs(epsg, 4326, always_xy=True)


def read_aoi(aoi: object, *, buffer_km: float = 0.0) -> np.ndarray:
    """An AOI as an array of lon/lat shapely geometries.

    Parameters
    ----------
    aoi
        A ``(west, south, east, north)`` box in degrees, a shapely geometry in lon/lat, a
        GeoDataFrame/GeoSeries in any CRS, or the path of any vector file GDAL reads (e.g. RGI
        outlines or a mountain-range polygon).
    buffer_km
        Grow the AOI by at least this distance (applied to the tiles' test, not the geometries).

    Raises
    ------
    InvalidArgumentError
        When the AOI is empty or of an unknown kind; ``InvalidBBoxError`` for a bad box.
    FileNotFoundError
        When a path does not exist.
    """
    if buffer_km < 0:
        raise InvalidArgumentError(f"buffer_km={buffer_km} must be >= 0.")
    if isinstance(aoi, str | Path):
        path = Path(aoi)
        if not path.exists():
            raise FileNotFoundError(f"--aoi {path} does not exist; pass a vector file (GeoPackage, GeoJSON, Shapefile, ...).")
        import geopandas as gpd

        aoi = gpd.read_file(path)
    if hasattr(aoi, "to_crs") and hasattr(aoi, "geometry"):  # GeoDataFrame / GeoSeries
        frame = aoi if aoi.crs is not None else None
        if frame is None:
            raise InvalidArgumentError("The AOI has no CRS; set one (e.g. gdf.set_crs('EPSG:4326')).")
        geoms = np.asarray(aoi.to_crs(4326).geometry.values)
    elif isinstance(aoi, shapely.Geometry):
        geoms = np.array([aoi])
    elif isinstance(aoi, Iterable):
        geoms = np.array([shapely.box(*validate_bbox(list(aoi), name="aoi"))])
    else:
        raise InvalidArgumentError(f"aoi={aoi!r}: pass a (west, south, east, north) box, a geometry or a vector file.")
    geoms = geoms[~shapely.is_empty(geoms) & ~shapely.is_missing(geoms)]
    if len(geoms) == 0:
        raise InvalidArgumentError("The AOI holds no geometry; pass a box, a polygon or a non-empty vector file.")
    return shapely.make_valid(geoms)


def tiles_for(
    aoi: np.ndarray,
    *,
    tile_km: float = 100.0,
    margin_km: float = 2.0,
    resolution: float = 10.0,
    buffer_km: float = 0.0,
) -> list[Tile]:
    """The tiles whose owned part (core within its zone's strip) meets the AOI.

    Parameters
    ----------
    aoi
        Lon/lat geometries (see :func:`read_aoi`).
    tile_km, margin_km, resolution
        Tile size, margin and pixel size (see :func:`check_tile_km`).
    buffer_km
        Also take tiles within this distance of the AOI.

    Returns
    -------
    list[Tile]
        Sorted by zone, then north to south, then west to east.
    """
    check_tile_km(tile_km, resolution, margin_km)
    size = tile_km * 1000.0
    tree = shapely.STRtree(aoi)
    w, s, e, n = shapely.total_bounds(aoi)
    pad = buffer_km / 111.0 / max(math.cos(math.radians(min(max(abs(s), abs(n)), 89.0))), 1e-3)
    box = (max(w - pad, -180), max(s - pad, -90), min(e + pad, 180), min(n + pad, 90))
    tiles: list[Tile] = []
    for epsg in zones_of(box):
        sw, ss, se, sn = zone_strip(epsg)
        part = (max(box[0], sw), max(box[1], ss), min(box[2], se), min(box[3], sn))
        if part[0] >= part[2] or part[1] >= part[3]:
            continue
        fwd = Transformer.from_crs(4326, epsg, always_xy=True)
        lon = np.concatenate([np.linspace(part[0], part[2], 64), np.full(64, part[2]), np.linspace(part[2], part[0], 64),
                              np.full(64, part[0])])
        lat = np.concatenate([np.full(64, part[1]), np.linspace(part[1], part[3], 64), np.full(64, part[3]),
                              np.linspace(part[3], part[1], 64)])
        x, y = fwd.transform(lon, lat)
        b = buffer_km * 1000.0
        res = float(resolution)
        extent = (math.floor((x.min() - b) / res) * res, math.floor((y.min() - b) / res) * res,
                  math.ceil((x.max() + b) / res) * res, math.ceil((y.max() + b) / res) * res)
        i0, i1 = math.floor(extent[0] / size), math.ceil(extent[2] / size) - 1
        j0, j1 = math.floor(extent[1] / size), math.ceil(extent[3] / size) - 1
        strip = shapely.box(sw, ss, se, sn)
        for j in range(j1, j0 - 1, -1):
            for i in range(i0, i1 + 1):
                sq = (i * size, j * size, (i + 1) * size, (j + 1) * size)
                clip = (max(sq[0], extent[0]), max(sq[1], extent[1]), min(sq[2], extent[2]), min(sq[3], extent[3]))
                tile = Tile(epsg, sq[0], sq[1], size, margin_km * 1000.0, res, None if clip == sq else clip)
                owned = tile.footprint
                if owned.is_empty or owned.area == 0:
                    continue
                probe = owned
                if buffer_km > 0:
                    xmin, ymin, xmax, ymax = tile.core_bounds
                    probe = _square_ll(epsg, (xmin - b, ymin - b, xmax + b, ymax + b)).intersection(strip)
                if len(tree.query(probe, predicate="intersects")):
                    tiles.append(tile)
    return tiles
