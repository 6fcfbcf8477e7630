"""A stackstac reader that generates pixels instead of fetching them: dry runs of whole ranges.

:class:`GeneratedReader` implements stackstac's ``Reader`` protocol for the ``generated://``
hrefs written by :mod:`glacierxr.testing.metadata`. Every pixel is a deterministic function of
its geographic position (the lon/lat of the output pixel centre) and the world seed, never of
the item, so overlapping tiles and different UTM zones agree exactly where they overlap:

* a seeded terrain (``elevation``, metres): large massifs with fractal ridged relief;
* glaciers wherever that terrain rises above a latitude-dependent snow line (plus a little
  noise): excursion sets of a fractal surface, so sizes range from a few hundred metres to
  tens of kilometres at 100 m, and many cross tile borders and UTM zone lines;
* Sentinel-2 L2A surface reflectances per class — ice/snow bright in the visible and dark at
  1.6 um, rock moderate and brighter at 1.6 um, vegetation below the tree line — and the
  matching SCL (11 snow/ice, 5 bare, 4 vegetation; 8/9 cloud where a date-dependent cloud
  field is thick, so same-day tiles agree too). Values are returned as the stored DNs the
  href's ``scale``/``offset`` describe (``DN = round((reflectance - offset) / scale)``),
  since glacierxr applies scale and offset itself;
* Copernicus DEM elevations for ``band=dem``.

Outside an asset's own ``bounds`` (in its own CRS) or its ``lon`` limits the reader returns the
fill value. :func:`true_glacier_mask` and :func:`rasterize_truth` give the truth to compare with.

Examples
--------
>>> import stackstac                                                   # doctest: +SKIP
>>> arr = stackstac.stack(items, assets=["red", "swir16"], epsg=32643, resolution=100,
...                       bounds=bounds, reader=GeneratedReader, rescale=False, dtype="float32")
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from glacierxr.errors import AssetReadError, InvalidArgumentError

__all__ = [
    "GeneratedReader", "WORLDS", "parse_href", "world_fields", "true_glacier_mask", "elevation", "rasterize_truth",
    "reflectance_table", "snow_line",
]

_R_KM = 6371.0088
_KX = float(np.cos(np.radians(35.0)))  # fixed east-west scale of the world's km plane
_LATTICE_STEP = 16  # pixels between exactly transformed points (bilinear in between)

#: Surface classes: 0 rock, 1 ice/snow, 2 vegetation, 3 cloud. Reflectances per Earth Search asset.
_CLASSES = ("rock", "ice", "vegetation", "cloud")
_SCL = np.array([5, 11, 4, 9], np.uint8)
_BANDS = ("blue", "green", "red", "nir", "swir16")
_REFL = np.array([
    # blue  green  red   nir   swir16
    [0.10, 0.13, 0.17, 0.23, 0.28],  # rock
    [0.78, 0.74, 0.69, 0.58, 0.06],  # ice / snow
    [0.04, 0.07, 0.05, 0.32, 0.17],  # vegetation
    [0.55, 0.55, 0.55, 0.56, 0.42],  # cloud
], np.float32)


def reflectance_table() -> dict[str, dict[str, float]]:
    """Mean surface reflectance per class and asset key (before brightness variation)."""
    return {c: dict(zip(_BANDS, map(float, row), strict=True)) for c, row in zip(_CLASSES, _REFL, strict=True)}


# ----------------------------------------------------------------------------- noise


def _hash(ix: np.ndarray, iy: np.ndarray, key: int) -> np.ndarray:
    """Uniform [0, 1) values from integer lattice coordinates (splitmix64 finaliser)."""
    with np.errstate(over="ignore"):
        h = (ix.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (iy.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F))
        h ^= np.uint64(key & 0xFFFFFFFFFFFFFFFF)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return (h >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def _key(seed: int, layer: int) -> int:
    return int((seed * 0x100000001B3 + layer * 0x9E3779B1 + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF)


def _noise(X: np.ndarray, Y: np.ndarray, cell: float, key: int) -> np.ndarray:
    """Smooth value noise in [0, 1) with lattice spacing ``cell`` (km)."""
    gx, gy = X / cell, Y / cell
    fx0, fy0 = np.floor(gx), np.floor(gy)
    ix0, iy0 = int(fx0.min()), int(fy0.min())
    nx, ny = int(fx0.max()) - ix0 + 2, int(fy0.max()) - iy0 + 2
    lx, ly = np.meshgrid(np.arange(ix0, ix0 + nx, dtype=np.int64), np.arange(iy0, iy0 + ny, dtype=np.int64))
    lattice = _hash(lx, ly, key)
    tx, ty = (gx - fx0).astype(np.float32), (gy - fy0).astype(np.float32)
    tx, ty = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
    cx, cy = (fx0 - ix0).astype(np.intp), (fy0 - iy0).astype(np.intp)
    flat = lattice.ravel()
    i00 = cy * nx + cx
    v00, v10 = flat[i00], flat[i00 + 1]
    v01, v11 = flat[i00 + nx], flat[i00 + nx + 1]
    top = v00 + (v10 - v00) * tx
    bot = v01 + (v11 - v01) * tx
    return top + (bot - top) * ty


def _km(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.radians(lon) * (_R_KM * _KX)).astype(np.float64), (np.radians(lat) * _R_KM).astype(np.float64)


def snow_line(lat: np.ndarray | float) -> np.ndarray | float:
    """Glacier snow line (m) of the generated world by latitude: 5,500 m at 35 degrees, lower poleward."""
    return np.clip(5500.0 - 30.0 * (np.abs(lat) - 35.0), 600.0, 6000.0)


#: Worlds the generator knows: ``range`` (fractal mountain ranges above a snow line) and
#: ``blobs`` (many separate small glaciers with log-normal areas, as in High Mountain Asia).
WORLDS = ("range", "blobs")
_BLOB_CELL_KM = 2.0


def _blobs(X: np.ndarray, Y: np.ndarray, seed: int) -> np.ndarray:
    """Glacier mask of the ``blobs`` world: one irregular glacier per 2 km cell, never touching another.

    Areas are log-normal (median 0.2 km², sigma 1.2: ~10 % above 1 km²), capped so that a
    glacier stays inside its cell; a few percent of the cells hold none.
    """
    c = _BLOB_CELL_KM
    ix, iy = np.floor(X / c), np.floor(Y / c)
    u = _hash(ix.astype(np.int64), iy.astype(np.int64), _key(seed, 40))
    v = _hash(ix.astype(np.int64), iy.astype(np.int64), _key(seed, 41))
    g = _hash(ix.astype(np.int64), iy.astype(np.int64), _key(seed, 42))
    # log-normal area by inverse transform of a uniform (Box-Muller of two hashes)
    z = np.sqrt(-2.0 * np.log(np.clip(u, 1e-9, 1.0))) * np.cos(2 * np.pi * v)
    area = np.minimum(0.2 * np.exp(1.2 * z), np.pi * (0.42 * c) ** 2 / 1.3)
    r = np.sqrt(area / np.pi)
    cx, cy = (ix + 0.5) * c, (iy + 0.5) * c
    wobble = 1.0 + 0.3 * (_noise(X, Y, 0.15, _key(seed, 43)) - 0.5)
    return (np.hypot(X - cx, Y - cy) < r * wobble) & (g > 0.05)


def world_fields(lon: np.ndarray, lat: np.ndarray, seed: int = 0, world: str = "range") -> dict[str, np.ndarray]:
    """The generated world at lon/lat points (any shape).

    ``world`` is one of :data:`WORLDS`; both share the terrain, only the glaciers differ.

    Returns
    -------
    dict[str, numpy.ndarray]
        ``elevation`` (float32, m), ``glacier`` (bool), ``surface`` (uint8 class: 0 rock,
        1 ice/snow, 2 vegetation) and ``brightness`` (float32 factor around 1).
    """
    lon = np.asarray(lon, np.float64)
    lat = np.asarray(lat, np.float64)
    X, Y = _km(lon, lat)
    massif = 0.65 * _noise(X, Y, 420.0, _key(seed, 1)) + 0.35 * _noise(X, Y, 160.0, _key(seed, 2))
    massif = np.clip((massif - 0.3) / 0.4, 0.0, 1.0)
    massif = massif * massif * (3 - 2 * massif)
    relief = np.zeros_like(massif)
    total = 0.0
    for i, (cell, amp) in enumerate(((48.0, 1.0), (22.0, 0.75), (10.0, 0.5), (4.5, 0.3), (2.0, 0.16), (0.9, 0.08))):
        n = _noise(X, Y, cell, _key(seed, 10 + i))
        relief += amp * (1.0 - np.abs(2.0 * n - 1.0))  # ridged
        total += amp
    relief /= total  # ~[0.2, 0.9]
    z = 900.0 + 3400.0 * massif + 4200.0 * (0.35 + 0.65 * massif) * (relief - 0.45)
    z = z.astype(np.float32)
    ela = snow_line(lat).astype(np.float32)
    jitter = 250.0 * (_noise(X, Y, 1.6, _key(seed, 30)) - 0.5)
    glacier = (z + jitter) > ela if world != "blobs" else _blobs(X, Y, seed)
    veg = (~glacier) & (z < ela - 2800.0) & (_noise(X, Y, 3.0, _key(seed, 31)) > 0.45)
    surface = np.where(glacier, np.uint8(1), np.where(veg, np.uint8(2), np.uint8(0))).astype(np.uint8)
    brightness = (0.8 + 0.4 * _noise(X, Y, 0.7, _key(seed, 32))).astype(np.float32)
    return {"elevation": z, "glacier": glacier, "surface": surface, "brightness": brightness}


def elevation(lon: np.ndarray, lat: np.ndarray, seed: int = 0, world: str = "range") -> np.ndarray:
    """Generated terrain elevation (m, float32) at lon/lat points."""
    return world_fields(lon, lat, seed, world)["elevation"]


def true_glacier_mask(lon: np.ndarray, lat: np.ndarray, seed: int = 0, world: str = "range") -> np.ndarray:
    """Whether each lon/lat point is glacier in the generated world of ``seed`` (bool array)."""
    return world_fields(lon, lat, seed, world)["glacier"]


def _cloud(lon: np.ndarray, lat: np.ndarray, date: str, seed: int, cover: float) -> np.ndarray:
    """Cloud optical-thickness-like field in [0, 1) for one acquisition date (0 = clear)."""
    X, Y = _km(lon, lat)
    day = int(date.replace("-", "")) if date else 0
    k = _key(seed * 7919 + day, 40)
    c = 0.6 * _noise(X, Y, 35.0, k) + 0.4 * _noise(X, Y, 6.0, k + 1)
    thr = 1.0 - cover
    return np.clip((c - thr) / max(cover, 1e-6), 0.0, 1.0) * (c > thr)


# ----------------------------------------------------------------------------- coordinates

_local = threading.local()


def _transformer(src: int, dst: int):
    cache = getattr(_local, "transformers", None)
    if cache is None:
        cache = _local.transformers = {}
    if (src, dst) not in cache:
        from pyproj import Transformer

        cache[(src, dst)] = Transformer.from_crs(src, dst, always_xy=True)
    return cache[(src, dst)]


def _grid_xy(transform: Sequence[float], row_off: int, col_off: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    a, b, c, d, e, f = transform[:6]
    cols = col_off + np.arange(w) + 0.5
    rows = row_off + np.arange(h) + 0.5
    x = c + a * cols[None, :] + b * rows[:, None]
    y = f + d * cols[None, :] + e * rows[:, None]
    return x, y


def _interp_lattice(vals: np.ndarray, h: int, w: int, step: int) -> np.ndarray:
    """Bilinear upsampling of values on every ``step``-th pixel (plus the last) to ``(h, w)``."""
    r = np.arange(h) / step
    c = np.arange(w) / step
    r0 = np.minimum(r.astype(np.intp), vals.shape[0] - 2)
    c0 = np.minimum(c.astype(np.intp), vals.shape[1] - 2)
    tr = (r - r0)[:, None]
    tc = (c - c0)[None, :]
    v00 = vals[r0][:, c0]
    v01 = vals[r0][:, c0 + 1]
    v10 = vals[r0 + 1][:, c0]
    v11 = vals[r0 + 1][:, c0 + 1]
    return (v00 * (1 - tc) + v01 * tc) * (1 - tr) + (v10 * (1 - tc) + v11 * tc) * tr


def _project(epsg_src: int, epsg_dst: int, transform: Sequence[float], row_off: int, col_off: int,
             h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of a window of the ``epsg_src`` grid, expressed in ``epsg_dst``."""
    if epsg_src == epsg_dst:
        return _grid_xy(transform, row_off, col_off, h, w)
    step = _LATTICE_STEP
    if h * w <= 4 * step * step:
        x, y = _grid_xy(transform, row_off, col_off, h, w)
        return _transformer(epsg_src, epsg_dst).transform(x, y)
    nh, nw = -(-(h - 1) // step) + 1, -(-(w - 1) // step) + 1
    a, b, c, d, e, f = transform[:6]
    cols = col_off + 0.5 + np.arange(nw) * step
    rows = row_off + 0.5 + np.arange(nh) * step
    x = c + a * cols[None, :] + b * rows[:, None]
    y = f + d * cols[None, :] + e * rows[:, None]
    X, Y = _transformer(epsg_src, epsg_dst).transform(x, y)
    return _interp_lattice(np.asarray(X), h, w, step), _interp_lattice(np.asarray(Y), h, w, step)


_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 24


def _window_world(epsg: int, transform: tuple, window: tuple[int, int, int, int], seed: int,
                  world: str = "range") -> dict[str, np.ndarray]:
    """World fields of one output window, cached: all bands and items of a stack share them."""
    key = (epsg, transform, window, seed, world)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    row_off, col_off, h, w = window
    lon, lat = _project(epsg, 4326, transform, row_off, col_off, h, w)
    fields = world_fields(lon, lat, seed, world)
    fields["lon"], fields["lat"] = np.asarray(lon), np.asarray(lat)
    with _CACHE_LOCK:
        _CACHE[key] = fields
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return fields


def rasterize_truth(epsg: int, transform: Sequence[float], shape: tuple[int, int], seed: int = 0,
                    world: str = "range") -> np.ndarray:
    """The true glacier mask on a grid (pixel centres), e.g. a cube's ``epsg``/``transform``/``shape``."""
    h, w = shape
    lon, lat = _project(int(epsg), 4326, tuple(transform)[:6], 0, 0, h, w)
    return true_glacier_mask(lon, lat, seed, world)


# ----------------------------------------------------------------------------- hrefs


def parse_href(url: str) -> dict[str, Any]:
    """The parameters of a ``generated://`` href (see :mod:`glacierxr.testing.metadata`).

    Raises
    ------
    InvalidArgumentError
        When the href is not a ``generated://`` href or lacks ``band``/``epsg``/``bounds``.
    """
    parsed = urlparse(url)
    if parsed.scheme != "generated":
        raise InvalidArgumentError(f"{url!r} is not a generated:// href; GeneratedReader reads only those.")
    q = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    try:
        bounds = tuple(float(v) for v in q["bounds"].split(","))
        out = {
            "band": q["band"], "epsg": int(q["epsg"]), "bounds": bounds,
            "lon": tuple(float(v) for v in q["lon"].split(",")) if q.get("lon") else None,
            "scale": float(q.get("scale", 1.0)), "offset": float(q.get("offset", 0.0)),
            "nodata": float(q["nodata"]) if "nodata" in q else None,
            "date": q.get("date", ""), "seed": int(q.get("seed", 0)),
            "cloud": float(q.get("cloud", 0.04)), "world": q.get("world", "range"),
        }
    except (KeyError, ValueError) as exc:
        raise InvalidArgumentError(
            f"Generated href {url!r} lacks or garbles {exc}; write it with glacierxr.testing.metadata.") from None
    if len(bounds) != 4 or out["band"] not in (*_BANDS, "scl", "dem"):
        raise InvalidArgumentError(
            f"Generated href {url!r}: band must be one of {[*_BANDS, 'scl', 'dem']} and bounds four numbers.")
    return out


# ----------------------------------------------------------------------------- the reader


class GeneratedReader:
    """stackstac ``Reader`` that computes the pixels of ``generated://`` assets.

    Parameters
    ----------
    url
        A ``generated://`` href.
    spec
        stackstac ``RasterSpec`` of the output grid (``epsg``, ``transform``).
    resampling
        Ignored: values are evaluated exactly at output pixel centres.
    dtype, fill_value
        Output dtype and the value outside the asset's footprint.
    scale_offset
        Applied to the generated DNs like stackstac's own reader (``DN * scale + offset``);
        glacierxr passes ``(1, 0)`` (``rescale=False``) and applies the item's values itself.
    gdal_env, errors_as_nodata
        Accepted for the protocol; unused.
    """

    def __init__(self, *, url: str, spec: Any, resampling: Any = None, dtype: Any = np.float32,
                 fill_value: float | int = np.nan, scale_offset: tuple[float, float] = (1.0, 0.0),
                 gdal_env: Any = None, errors_as_nodata: tuple = ()) -> None:
        self.url = url
        self.spec = spec
        self.resampling = resampling
        self.dtype = np.dtype(dtype)
        self.fill_value = fill_value
        self.scale_offset = scale_offset
        self.gdal_env = gdal_env
        self.errors_as_nodata = errors_as_nodata
        try:
            self.params = parse_href(url)
        except InvalidArgumentError as exc:
            err = AssetReadError(str(exc))
            err.href = url
            raise err from None

    # the protocol ---------------------------------------------------------------
    def read(self, window: Any, **kwargs: Any) -> np.ndarray:
        """Generate the window (a rasterio ``Window`` relative to ``spec``) as an array of DNs."""
        p = self.params
        win = (int(window.row_off), int(window.col_off), int(window.height), int(window.width))
        h, w = win[2], win[3]
        epsg = int(self.spec.epsg)
        transform = tuple(self.spec.transform)[:6]
        world = _window_world(epsg, transform, win, p["seed"], p["world"])
        # the asset's own extent, in its own CRS
        if p["epsg"] == 4326:
            ax, ay = world["lon"], world["lat"]
        elif p["epsg"] == epsg:
            ax, ay = _grid_xy(transform, *win)
        else:
            ax, ay = _project(epsg, p["epsg"], transform, *win)
        x0, y0, x1, y1 = p["bounds"]
        inside = (ax >= x0) & (ax < x1) & (ay > y0) & (ay <= y1)
        if p["lon"] is not None:
            inside &= (world["lon"] >= p["lon"][0]) & (world["lon"] <= p["lon"][1])
        out = np.full((h, w), self.fill_value, dtype=self.dtype)
        if not inside.any():
            return out
        band = p["band"]
        if band == "dem":
            values = world["elevation"].astype(np.float64)
        else:
            surface = world["surface"]
            cloud = _cloud(world["lon"], world["lat"], p["date"], p["seed"], p["cloud"]) if p["date"] else None
            if band == "scl":
                values = _SCL[surface].astype(np.float64)
                if cloud is not None:
                    values = np.where(cloud > 0.5, 9.0, np.where(cloud > 0.05, 8.0, values))
            else:
                b = _BANDS.index(band)
                refl = _REFL[surface, b] * np.where(surface == 0, world["brightness"], 0.93 + 0.07 * world["brightness"])
                if cloud is not None:
                    refl = refl + (_REFL[3, b] - refl) * np.minimum(1.0, cloud * 1.6)
                values = np.round((refl - p["offset"]) / p["scale"])
                values = np.clip(values, 1, 65535)
        scale, offset = self.scale_offset
        if (scale, offset) != (1, 0):
            values = values * scale + offset
        out[inside] = values[inside].astype(self.dtype, copy=False)
        return out

    def close(self) -> None:
        """Nothing to release."""

    def __getstate__(self) -> dict:
        return {k: getattr(self, k) for k in ("url", "spec", "resampling", "dtype", "fill_value", "scale_offset",
                                              "gdal_env", "errors_as_nodata")}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)
