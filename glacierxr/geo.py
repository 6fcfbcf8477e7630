"""Grids, CRS and bounding boxes: the small geometry every other module agrees on.

A :class:`Grid` is the one output grid of a datacube: a CRS, a pixel size and the outer
bounds, snapped outward to whole pixels. Pixel-centre coordinates follow from it exactly, so
that two cubes built from the same bbox and resolution share every coordinate bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from affine import Affine
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as _PyprojCRSError

from glacierxr.errors import CRSError, GridError, InvalidBBoxError

__all__ = ["BBox", "Grid", "validate_bbox", "utm_crs", "to_crs", "grid_from_bbox", "bounds_of"]

BBox = tuple[float, float, float, float]


def validate_bbox(bbox: Sequence[float], *, name: str = "bbox") -> BBox:
    """Check a lon/lat bounding box and return it as a tuple of floats.

    Parameters
    ----------
    bbox
        ``(west, south, east, north)`` in degrees (EPSG:4326).
    name
        The argument name used in error messages.

    Raises
    ------
    InvalidBBoxError
        When the box does not have four finite numbers, is inverted or empty, or leaves
        the longitude/latitude range.
    """
    try:
        values = tuple(float(v) for v in bbox)
    except (TypeError, ValueError):
        raise InvalidBBoxError(
            f"{name}={bbox!r} is not a sequence of numbers; pass (west, south, east, north) in degrees, "
            "e.g. (86.80, 27.90, 86.95, 28.02)."
        ) from None
    if len(values) != 4:
        raise InvalidBBoxError(
            f"{name} has {len(values)} values; pass exactly four: (west, south, east, north) in degrees."
        )
    w, s, e, n = values
    if not all(math.isfinite(v) for v in values):
        raise InvalidBBoxError(f"{name}={values} contains NaN or infinity; pass finite degrees.")
    if not (-180 <= w <= 180 and -180 <= e <= 180):
        raise InvalidBBoxError(
            f"{name} longitudes ({w}, {e}) must lie in [-180, 180]; is the box in projected metres "
            "or in (south, west, north, east) order? Pass (west, south, east, north) in degrees."
        )
    if not (-90 <= s <= 90 and -90 <= n <= 90):
        raise InvalidBBoxError(
            f"{name} latitudes ({s}, {n}) must lie in [-90, 90]; pass (west, south, east, north) in degrees."
        )
    if w == e or s == n:
        raise InvalidBBoxError(
            f"{name}={values} has zero area (west == east or south == north); give the region a width and "
            "a height, e.g. (west, south, west + 0.1, south + 0.1)."
        )
    if w > e:
        raise InvalidBBoxError(
            f"{name} west ({w}) must be smaller than east ({e}); boxes across the antimeridian are not "
            "supported: split them into two boxes."
        )
    if s > n:
        raise InvalidBBoxError(f"{name} south ({s}) must be smaller than north ({n}); swap them.")
    return (w, s, e, n)


def utm_crs(lon: float, lat: float) -> CRS:
    """The WGS 84 / UTM zone CRS containing a point (EPSG:326xx north, 327xx south)."""
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def to_crs(crs: object) -> CRS:
    """Parse anything pyproj understands (``"EPSG:32645"``, ``32645``, a CRS, WKT) into a CRS.

    Raises
    ------
    CRSError
        When the value cannot be parsed.
    """
    if isinstance(crs, CRS):
        return crs
    try:
        return CRS.from_user_input(crs)
    except (_PyprojCRSError, TypeError) as exc:
        raise CRSError(
            f"Cannot interpret {crs!r} as a coordinate reference system ({exc}); pass e.g. 'EPSG:32645'."
        ) from None


def epsg_of(crs: CRS) -> int:
    """The EPSG code of a CRS, or a :class:`CRSError` saying the grid needs one."""
    code = crs.to_epsg()
    if code is None:
        raise CRSError(
            f"The CRS {crs.name!r} has no EPSG code; the datacube grid needs one. Pass crs='EPSG:xxxx'."
        )
    return code


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid: CRS, pixel size and outer bounds snapped to whole pixels."""

    crs: CRS
    """Coordinate reference system of the grid."""
    resolution: float
    """Pixel size in CRS units (metres for UTM)."""
    bounds: BBox
    """Outer edges ``(xmin, ymin, xmax, ymax)`` in the grid's CRS; multiples of ``resolution``."""

    @cached_property
    def shape(self) -> tuple[int, int]:
        """``(rows, columns)``."""
        xmin, ymin, xmax, ymax = self.bounds
        return (round((ymax - ymin) / self.resolution), round((xmax - xmin) / self.resolution))

    @property
    def epsg(self) -> int:
        """EPSG code of the CRS."""
        return epsg_of(self.crs)

    @property
    def transform(self) -> Affine:
        """Affine transform from (col, row) to the top-left corner of that pixel."""
        return Affine(self.resolution, 0.0, self.bounds[0], 0.0, -self.resolution, self.bounds[3])

    @property
    def x(self) -> np.ndarray:
        """Pixel-centre x coordinates (float64), west to east."""
        return self.bounds[0] + (np.arange(self.shape[1]) + 0.5) * self.resolution

    @property
    def y(self) -> np.ndarray:
        """Pixel-centre y coordinates (float64), north to south."""
        return self.bounds[3] - (np.arange(self.shape[0]) + 0.5) * self.resolution

    @property
    def area_km2(self) -> float:
        """Area covered by the grid in km² (in the CRS's units squared / 1e6)."""
        return self.shape[0] * self.shape[1] * self.resolution**2 / 1e6


def grid_from_bbox(bbox: Sequence[float], *, resolution: float = 10.0, crs: object = None) -> Grid:
    """The grid covering a lon/lat bbox at ``resolution``, in its UTM zone unless ``crs`` is given.

    The bbox is transformed with densified edges and its bounds are snapped *outward* to whole
    multiples of ``resolution``, so the grid covers the whole box and pixel edges of grids
    with the same resolution always align.

    Raises
    ------
    InvalidBBoxError, GridError, CRSError
        On a malformed bbox, a non-positive resolution or an unknown CRS.
    """
    w, s, e, n = validate_bbox(bbox)
    if not (isinstance(resolution, int | float) and math.isfinite(resolution) and resolution > 0):
        raise GridError(f"resolution={resolution!r} must be a positive number of CRS units, e.g. 10.")
    target = utm_crs((w + e) / 2, (s + n) / 2) if crs is None else to_crs(crs)
    epsg_of(target)
    if target.is_geographic and resolution > 1:
        raise GridError(
            f"resolution={resolution} is in degrees for the geographic CRS {target.to_string()}; "
            "pass a projected crs (e.g. a UTM zone) or a resolution in degrees."
        )
    from rasterio.warp import transform_bounds

    xmin, ymin, xmax, ymax = transform_bounds("EPSG:4326", target, w, s, e, n, densify_pts=21)
    snapped = (
        math.floor(xmin / resolution) * resolution,
        math.floor(ymin / resolution) * resolution,
        math.ceil(xmax / resolution) * resolution,
        math.ceil(ymax / resolution) * resolution,
    )
    return Grid(crs=target, resolution=float(resolution), bounds=snapped)


def bounds_of(transform: Affine, shape: tuple[int, int]) -> BBox:
    """``(xmin, ymin, xmax, ymax)`` of a raster's outer pixel edges (any axis orientation)."""
    xs = (transform.c, transform.c + transform.a * shape[1])
    ys = (transform.f, transform.f + transform.e * shape[0])
    return (min(xs), min(ys), max(xs), max(ys))


def lonlat_of(crs: CRS, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitude/latitude of points given in ``crs``."""
    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return tr.transform(x, y)


def xy_of(crs: CRS, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in ``crs`` of lon/lat points."""
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return tr.transform(lon, lat)
