"""A seeded synthetic glacier region: thousands of small glacier outlines over a DEM.

:func:`many_glaciers` stands in for one production tile of a mountain region such as High
Mountain Asia: glacier areas log-normal (median 0.2 km², about 10 % above 1 km² and a handful
above 10 km²), irregular elongated blobs, some with nunataks (holes), none overlapping, over a
NumPy-backed DEM (3000-7000 m, slopes up to ~45 deg, a few voids) and a glacier probability
raster on the same projected grid. It is what the inventory benchmark and the tests of the
batched inventory run on; everything is drawn from one seed, so a call is reproducible.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import rioxarray  # noqa: F401  (registers .rio)
import shapely
import xarray as xr
from affine import Affine
from rasterio.features import rasterize

from glacierxr.errors import InvalidArgumentError

__all__ = ["many_glaciers"]

_VERTICES = 96
_HARMONICS = 5


def _blobs(rng: np.random.Generator, area_m2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shapes centred on (0, 0) with the given areas: shells ``(n, V, 2)`` and hole flags.

    Each shape is a star-shaped blob ``r(t) = 1 + sum a_k cos(k t + p_k)`` (so a simple
    polygon), stretched along a random direction by 1..3.5 (more for large glaciers) and
    scaled to its area. Holes are made by :func:`many_glaciers` from the returned flags.
    """
    n = len(area_m2)
    t = np.linspace(0.0, 2 * math.pi, _VERTICES, endpoint=False)
    k = np.arange(2, 2 + _HARMONICS)
    amp = rng.uniform(0.0, 1.0, (n, _HARMONICS)) / k**1.2
    amp *= (0.55 / np.maximum(amp.sum(axis=1), 1e-9))[:, None] * rng.uniform(0.4, 1.0, (n, 1))
    phase = rng.uniform(0.0, 2 * math.pi, (n, _HARMONICS))
    r = 1.0 + np.einsum("nk,nkv->nv", amp, np.cos(k[None, :, None] * t[None, None, :] + phase[:, :, None]))
    log_a = np.log10(np.maximum(area_m2 / 1e6, 1e-3))
    elong = np.clip(1.3 + 0.6 * (log_a + 1.0) + rng.normal(0.0, 0.35, n), 1.0, 3.5)
    x = r * np.cos(t) * np.sqrt(elong)[:, None]
    y = r * np.sin(t) / np.sqrt(elong)[:, None]
    rot = rng.uniform(0.0, math.pi, n)[:, None]
    xr_, yr_ = x * np.cos(rot) - y * np.sin(rot), x * np.sin(rot) + y * np.cos(rot)
    shells = np.stack([xr_, yr_], axis=-1)
    # holes need room: > 0.4 km² and the blob at least ~25 pixels across its narrow side
    r_min = r.min(axis=1) / np.sqrt(elong)
    holes = (area_m2 > 4e5) & (rng.random(n) < 0.35)
    return shells, np.where(holes, r_min, 0.0)


def many_glaciers(
    n: int = 3000,
    *,
    seed: int = 0,
    resolution: float = 10.0,
    crs: str = "EPSG:32645",
    median_km2: float = 0.2,
    sigma: float = 1.256,
    origin: tuple[float, float] = (300_000.0, 3_200_000.0),
    max_km2: float = 60.0,
    min_km2: float = 0.01,
) -> tuple[gpd.GeoDataFrame, xr.DataArray, xr.DataArray]:
    """A reproducible region of ``n`` small glaciers, their DEM and a probability raster.

    Parameters
    ----------
    n
        Number of glaciers (rows of the outlines).
    seed
        Seed of every random draw; the same arguments give the same region.
    resolution
        Pixel size of both rasters, in CRS units (metres).
    crs
        Projected CRS of the outlines and the rasters (default UTM 45N, central Himalaya).
    median_km2, sigma
        Median and log-space standard deviation of the log-normal glacier areas. The default
        ``sigma`` puts 10 % of the glaciers above 1 km² for a 0.2 km² median (and about 0.1 %
        above 10 km²).
    origin
        ``(x, y)`` of the upper-left corner of the rasters, in CRS units. The default lies near
        87 E, 29 N.
    max_km2, min_km2
        Areas are clipped to this range (RGI keeps glaciers of 0.01 km² and more). One glacier
        in a thousand (the largest) is made at least 10-30 km² when ``max_km2`` allows.

    Returns
    -------
    outlines : geopandas.GeoDataFrame
        One Polygon per glacier (about a fifth of those above 0.4 km² with a nunatak hole),
        columns ``glacier`` (0..n-1) and ``target_km2``, in ``crs``. No two overlap; at least
        four pixels of bare ground separate them.
    dem : xarray.DataArray
        float32 elevation ``(y, x)`` in metres, 3000-7000 m, NumPy-backed, with the CRS and the
        transform attached by rioxarray; a few small voids are NaN.
    probability : xarray.DataArray
        float32 glacier probability on the same grid: 0.6-1 on the glaciers, 0-0.4 elsewhere.

    Raises
    ------
    InvalidArgumentError
        When ``n`` is not positive, or a size or an area bound is not positive.
    """
    if not (isinstance(n, int | np.integer) and n > 0):
        raise InvalidArgumentError(f"n={n!r} must be a positive number of glaciers, e.g. 3000.")
    if not (resolution > 0 and median_km2 > 0 and sigma >= 0 and 0 < min_km2 < max_km2):
        raise InvalidArgumentError(
            f"resolution={resolution}, median_km2={median_km2}, sigma={sigma}, min_km2={min_km2}, "
            f"max_km2={max_km2}: sizes and areas must be positive, sigma >= 0 and min_km2 < max_km2."
        )
    rng = np.random.default_rng(seed)
    area = np.clip(median_km2 * np.exp(sigma * rng.standard_normal(n)), min_km2, max_km2)
    n_big = min(round(n / 1000), n)  # the log-normal tail is thin: make sure a few are > 10 km²
    if n_big and max_km2 > 10.0:
        big = np.argsort(area)[-n_big:]
        area[big] = np.maximum(area[big], rng.uniform(10.0, min(30.0, max_km2), n_big))
    area *= 1e6
    shells, hole_r = _blobs(rng, area)

    # scale each unit blob (with its hole) to its target area
    unit = shapely.polygons(shells)
    has_hole = hole_r > 0
    hole_rel = 0.45 * rng.uniform(0.5, 1.0, n)
    ring = np.linspace(0.0, 2 * math.pi, 24, endpoint=False)
    circle = np.stack([np.cos(ring), np.sin(ring)], axis=-1)  # counter-clockwise unit circle
    hole_scale = np.where(has_hole, hole_r * hole_rel, 0.0)
    a_unit = shapely.area(unit) - shapely.area(shapely.polygons(circle)) * hole_scale**2
    k = np.sqrt(area / a_unit)

    # shelf packing of the bounding boxes, tallest first, with a gap of bare ground
    ext = np.stack([shells[..., 0].min(1), shells[..., 1].min(1), shells[..., 0].max(1), shells[..., 1].max(1)], 1)
    ext *= k[:, None]
    gap = 4 * resolution + 0.1 * np.sqrt(area)
    w_box = ext[:, 2] - ext[:, 0] + gap
    h_box = ext[:, 3] - ext[:, 1] + gap
    width = math.sqrt(float(np.sum(w_box * h_box)) * 1.15)
    width = max(width, float(w_box.max()))
    cx = np.empty(n)
    cy = np.empty(n)
    x = y = shelf_h = 0.0
    for i in np.argsort(-h_box, kind="stable"):
        if x + w_box[i] > width:
            x, y, shelf_h = 0.0, y + shelf_h, 0.0
        cx[i] = x + gap[i] / 2 - ext[i, 0]
        cy[i] = y + gap[i] / 2 + ext[i, 3]  # y grows downwards from the upper edge here
        x += w_box[i]
        shelf_h = max(shelf_h, h_box[i])
    margin = 10 * resolution
    cols = math.ceil((width + 2 * margin) / resolution)
    rows = math.ceil((y + shelf_h + 2 * margin) / resolution)
    x0, y0 = origin
    ex = x0 + margin + cx  # CRS coordinates of the blob centres
    ny = y0 - margin - cy

    geoms = []
    for i in range(n):
        shell = shells[i] * k[i] + [ex[i], ny[i]]
        if has_hole[i]:
            hole = circle[::-1] * (hole_scale[i] * k[i]) + [ex[i], ny[i]]
            geoms.append(shapely.Polygon(shell, [hole]))
        else:
            geoms.append(shapely.Polygon(shell))
    outlines = gpd.GeoDataFrame({"glacier": np.arange(n), "target_km2": area / 1e6}, geometry=geoms, crs=crs)

    # DEM: a few waves of 2-15 km wavelength (outer products, so cheap), noise, voids
    xs = x0 + (np.arange(cols) + 0.5) * resolution
    ys = y0 - (np.arange(rows) + 0.5) * resolution
    z = np.full((rows, cols), 5000.0, dtype=np.float32)
    for amp_m, lam in ((1300.0, 15_000.0), (450.0, 6_000.0), (150.0, 2_000.0)):
        kx, ky = 2 * math.pi / lam * rng.uniform(0.6, 1.4, 2)
        px, py = rng.uniform(0, 2 * math.pi, 2)
        fx, fy = (kx * (xs - x0) + px), (ky * (ys - y0) + py)
        # sin(fx + fy) = sin fx cos fy + cos fx sin fy
        wave = np.outer(np.cos(fy), np.sin(fx)) + np.outer(np.sin(fy), np.cos(fx))
        z += np.float32(amp_m) * wave.astype(np.float32)
    z += np.float32(1.5) * rng.standard_normal(z.shape, dtype=np.float32)
    np.clip(z, 3000.0, 7000.0, out=z)
    for _ in range(max(1, rows * cols // 250_000)):
        r0, c0 = rng.integers(0, rows), rng.integers(0, cols)
        hh, ww = rng.integers(2, 12, 2)
        z[r0 : r0 + hh, c0 : c0 + ww] = np.nan

    transform = Affine(resolution, 0.0, x0, 0.0, -resolution, y0)
    inside = rasterize(((g, 1) for g in geoms), out_shape=(rows, cols), transform=transform, dtype="uint8")
    p = np.outer(np.cos((ys - y0) / 3000.0), np.sin((xs - x0) / 4000.0)).astype(np.float32)
    p = 0.2 + 0.2 * p
    p[inside == 1] += 0.6

    def da(values: np.ndarray, name: str) -> xr.DataArray:
        out = xr.DataArray(values, dims=("y", "x"), coords={"y": ys, "x": xs}, name=name)
        return out.rio.write_crs(crs).rio.write_transform(transform)

    return outlines, da(z, "elevation"), da(p, "glacier_probability")
