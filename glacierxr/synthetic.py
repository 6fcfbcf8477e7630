"""Seeded, physically plausible synthetic mountain regions written as COGs + STAC.

:func:`make_region` builds a glaciated mountain range and writes it the way the real providers
publish their data, so the rest of glacierxr reads it through exactly the code path it uses for
Earth Search or Planetary Computer:

* **Terrain.** By default a mountain range (:mod:`glacierxr.ranges`): a main crest with spurs
  branching off on both sides, flat-floored valleys between them, side ridges and cirques on
  their walls, ~3,600-6,500 m. ``terrain="massif"`` gives the older world: a fractal
  (spectral-synthesis fBm) surface with ridged noise, lifted into one massif.
* **Glaciers.** A linear mass-balance profile around an equilibrium-line altitude (ELA); ice is
  routed downslope with multiple-flow-direction balance fluxes, so glaciers start in the
  accumulation areas and flow down valleys until ablation uses the flux up. Steep rock stays
  bare (nunataks inside the ice); the lower tongues of large glaciers are debris-covered;
  proglacial lakes sit in front of some termini. In a range the truth lists glaciers split at
  the ice divides the terrain was built with (connected ice within one valley's catchment), and
  the connected ice masses beside them.
* **Surfaces.** Per date: snow above the (rising) transient snowline, firn, clean ice, debris,
  rock, vegetation low down, lake water, seasonal snow patches outside glaciers, clouds and cloud
  shadows on some dates, a no-data tile corner on one.
* **Sensors.** Sentinel-2 L2A surface reflectance (B02 B03 B04 B08 at 10 m, B11 at 20 m, SCL at
  20 m) as Earth Search v1 ``sentinel-2-l2a`` items; Sentinel-1 RTC linear gamma0 VV/VH with
  speckle as Planetary Computer ``sentinel-1-rtc`` items; a 1-arcsecond geographic DEM as
  ``cop-dem-glo-30``; the true glacier outlines (``truth/glaciers.gpkg``) and ice masses
  (``truth/complexes.gpkg``) as GeoPackages.
* **Layout.** A region inside one UTM zone is written as one item per date on its own grid. A
  region across a zone boundary (or any region with ``tiling="mgrs"``) is published the way the
  archives publish it: overlapping MGRS-like Sentinel-2 tiles (``S2B_45RVL_20230801_0_L2A``) and
  one Sentinel-1 scene per date in each zone's own CRS, exact 1-degree DEM tiles
  (``Copernicus_DSM_COG_10_N28_00_E089_00_DEM``) and outlines in EPSG:4326, all warped from the
  one master grid the world is generated on.

Reflectances per class are typical values from the literature (snow/ice spectra after Dozier
1989 and Painter et al. 2009; debris and rock after Paul et al. 2004; vegetation and turbid
proglacial water from the USGS spectral library); they are modulated by DEM illumination
(cosine of the local solar incidence plus a diffuse part). Backscatter per class follows
Nagler & Rott 2000 (wet snow ~ -20 dB) and typical C-band values elsewhere.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from affine import Affine
from pyproj import CRS
from scipy import ndimage

from glacierxr.errors import GridError
from glacierxr.geo import bounds_of, lonlat_of, utm_crs, xy_of

__all__ = ["Region", "S2Tile", "make_region", "world", "CLASSES", "S2_BANDS", "REFLECTANCE", "BACKSCATTER_DB"]

#: Surface classes of the synthetic world.
CLASSES = ("rock", "vegetation", "water", "snow", "firn", "ice", "debris", "cloud", "shadow")
_ROCK, _VEG, _WATER, _SNOW, _FIRN, _ICE, _DEBRIS, _CLOUD, _SHADOW = range(len(CLASSES))
#: Classes that are glacier ice (snow counts only where it lies on a glacier).
GLACIER_SURFACES = ("snow", "firn", "ice", "debris")

#: Sentinel-2 bands written, with the Earth Search v1 asset key and native pixel size (m).
S2_BANDS = {"B02": ("blue", 10), "B03": ("green", 10), "B04": ("red", 10), "B08": ("nir", 10), "B11": ("swir16", 20)}

#: Surface reflectance per class for B02, B03, B04, B08, B11 (see module docstring for sources).
REFLECTANCE = {
    "rock": (0.14, 0.17, 0.20, 0.26, 0.32),
    "vegetation": (0.04, 0.08, 0.05, 0.36, 0.18),
    "water": (0.09, 0.13, 0.10, 0.05, 0.01),
    "snow": (0.93, 0.92, 0.90, 0.82, 0.09),
    "firn": (0.78, 0.76, 0.73, 0.62, 0.07),
    "ice": (0.52, 0.48, 0.42, 0.28, 0.03),
    "debris": (0.11, 0.13, 0.15, 0.21, 0.24),
    "cloud": (0.78, 0.78, 0.79, 0.80, 0.58),
}
#: Late-summer C-band gamma0 in dB, (VV, VH) per class (wet snow and firn are dark).
BACKSCATTER_DB = {
    "rock": (-9.0, -16.5),
    "vegetation": (-11.0, -17.0),
    "water": (-23.0, -29.0),
    "snow": (-19.0, -26.0),
    "firn": (-14.0, -21.0),
    "ice": (-15.0, -23.0),
    "debris": (-10.0, -17.5),
}
_SCL_OF_CLASS = {_ROCK: 5, _VEG: 4, _WATER: 6, _SNOW: 11, _FIRN: 11, _ICE: 11, _DEBRIS: 5}
_S2_NODATA = 0
_S1_NODATA = -32768.0
_S2_OFFSET_BASELINE = "04.00"
_SCL_BAND = {"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}
_S1_BAND = {"nodata": _S1_NODATA, "data_type": "float32", "unit": "linear gamma0"}
_DEM_BAND = {"sampling": "point", "data_type": "float32", "spatial_resolution": 30, "unit": "meter"}


@dataclass(frozen=True)
class S2Tile:
    """One Sentinel-2 tile of a synthetic region: an MGRS-like square in its UTM zone's CRS."""

    code: str
    """Tile code, e.g. ``'45RVL'`` (zone, latitude band, two grid-square letters); with
    ``tiling="single"`` the region name in capitals."""
    crs: str
    """CRS of the tile's rasters, e.g. ``'EPSG:32645'``."""
    transform: Affine
    """Affine transform of the tile's 10 m grid (the 20 m grid has the same origin)."""
    shape: tuple[int, int]
    """``(rows, cols)`` of the tile's 10 m grid."""
    item_ids: list[str] = field(default_factory=list, compare=False)
    """Ids of the Sentinel-2 items written for this tile (one per date where it has data)."""

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` of the tile in :attr:`crs`."""
        return bounds_of(self.transform, self.shape)


@dataclass
class Region:
    """A synthetic region written to disk: where its STAC, COGs and truth are, and its geometry.

    The world is generated on one master grid (:attr:`crs`, :attr:`transform`, :attr:`shape`).
    ``arrays`` holds the true per-date values on that grid that the COGs were made from
    (float32, before quantisation), for tests that check what a reader returns. With
    ``tiling="mgrs"`` (regions across UTM zones) the COGs are nearest-neighbour warped copies of
    these arrays in each zone's CRS (the DEM tiles sample the surface bilinearly), so compare
    through a reader or a rasterised truth, not pixel by pixel.
    """

    name: str
    """Region name (also the prefix of its item ids)."""
    root: Path
    """Folder the region was written to."""
    bbox: tuple[float, float, float, float]
    """Lon/lat bounds (west, south, east, north) of the region's UTM rectangle."""
    datetime: str
    """A ``start/end`` interval covering every acquisition."""
    crs: str
    """The UTM CRS of the optical and radar rasters, e.g. ``'EPSG:32645'``."""
    transform: Affine
    """Affine transform of the 10 m grid."""
    shape: tuple[int, int]
    """``(rows, cols)`` of the 10 m grid."""
    dates: list[dt.datetime]
    """Acquisition times of the Sentinel-2 scenes (Sentinel-1 is one day later)."""
    stac_dir: Path
    """Folder with one ``<collection>/collection.json`` + ``items.ndjson`` per collection."""
    truth_path: Path
    """GeoPackage of the true glacier outlines (layer ``glaciers``), split at ice divides with
    ``terrain="range"``; each has the ``complex_id`` of its ice mass."""
    collections: dict[str, list[str]] = field(default_factory=dict)
    """Item ids per collection id."""
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """True values: ``reflectance`` (date, band, y, x) for the 10 m bands, ``b11`` (date, y/2, x/2),
    ``scl`` (date, y/2, x/2), ``vv``/``vh`` (date, y, x), ``elevation`` (y, x), ``glacier`` (y, x),
    ``debris`` (y, x), ``classes`` (date, y, x), ``nodata`` (date, y, x); ``dem`` (the DEM raster
    written) only with ``tiling="single"``."""
    tiling: str = "single"
    """How the rasters are published: ``"single"`` (one item per date on the master grid) or
    ``"mgrs"`` (per UTM zone: overlapping Sentinel-2 tiles, one Sentinel-1 item per date, 1-degree
    DEM tiles)."""
    zones: list[str] = field(default_factory=list)
    """EPSG codes of the CRSs the optical/radar items are published in, west to east, e.g.
    ``['EPSG:32645', 'EPSG:32646']``; ``[crs]`` with ``tiling="single"``."""
    tiles: list[S2Tile] = field(default_factory=list)
    """The Sentinel-2 tile layout (one tile, the master grid, with ``tiling="single"``)."""
    truth_crs: str | None = None
    """CRS of :attr:`truth_path`: ``'EPSG:4326'`` with ``tiling="mgrs"``, :attr:`crs` otherwise."""

    @property
    def complexes_path(self) -> Path:
        """GeoPackage of the true ice masses (RGI7C-like: connected ice), beside :attr:`truth_path`."""
        return self.truth_path.with_name("complexes.gpkg")

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` of the 10 m grid in :attr:`crs`."""
        return bounds_of(self.transform, self.shape)

    @property
    def resolution(self) -> float:
        """Pixel size of the 10 m grid."""
        return self.transform.a


# ----------------------------------------------------------------------------- terrain


def _fbm(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    """Fractional Brownian surface by spectral synthesis (power spectrum ~ k^-beta), zero mean, unit std."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    k = np.hypot(ky, kx)
    k[0, 0] = 1.0
    amplitude = k ** (-beta / 2.0)
    amplitude[0, 0] = 0.0
    phase = rng.uniform(0, 2 * np.pi, amplitude.shape)
    spectrum = amplitude * rng.normal(size=amplitude.shape) * np.exp(1j * phase)
    field = np.fft.irfft2(spectrum, s=shape)
    return ((field - field.mean()) / field.std()).astype(np.float64)


def _terrain(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Elevation in metres from 3,600 m: a massif, fBm hills, ridged fBm crests and fine roughness.

    Amplitudes give slopes like high mountains at 10 m (median ~30 deg, 90th percentile ~48 deg).
    """
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    massif = np.exp(-(((yy - cy) / (0.6 * h)) ** 2 + ((xx - cx) / (0.6 * w)) ** 2))
    z = (
        1100.0 * massif
        + 160.0 * _fbm(rng, shape, beta=4.0)
        + 650.0 * np.clip(1.0 - np.abs(_fbm(rng, shape, beta=4.6)) / 2.5, 0, 1) ** 2
        + 3.0 * _fbm(rng, shape, beta=2.4)
    )
    return z - z.min() + 3600.0


def _slope_aspect(z: np.ndarray, res: float) -> tuple[np.ndarray, np.ndarray]:
    """Slope (radians) and aspect (radians clockwise from north, downslope direction)."""
    dzdy, dzdx = np.gradient(z, res)  # rows run north -> south
    slope = np.arctan(np.hypot(dzdx, dzdy))
    aspect = np.arctan2(-dzdx, dzdy) % (2 * np.pi)
    return slope, aspect


def _illumination(z: np.ndarray, res: float, sun_elev: float, sun_az: float) -> np.ndarray:
    """Reflectance multiplier from terrain: direct (cos i / cos z) plus a diffuse 20 %."""
    slope, aspect = _slope_aspect(z, res)
    zen, az = math.radians(90 - sun_elev), math.radians(sun_az)
    cos_i = np.cos(zen) * np.cos(slope) + np.sin(zen) * np.sin(slope) * np.cos(az - aspect)
    return np.clip(0.2 + 0.8 * np.clip(cos_i, 0, None) / math.cos(zen), 0.2, 1.35)


# ----------------------------------------------------------------------------- glaciers


def _balance_flux(z: np.ndarray, balance: np.ndarray, res: float) -> np.ndarray:
    """Ice flux from a surface mass balance routed downslope (multiple flow directions).

    Cells are visited from the highest down; each passes its positive flux to its lower
    neighbours in proportion to slope^1.5. Flux that ablation uses up stops there.
    """
    h, w = z.shape
    flux = np.zeros_like(z)
    order = np.argsort(-z, axis=None)
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
    dist = np.array([math.hypot(dy, dx) * res for dy, dx in offsets])
    zp = np.pad(z, 1, mode="edge")
    neighbour_z = np.stack([zp[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets])
    drop = np.clip((z[None] - neighbour_z) / dist[:, None, None], 0, None) ** 1.5
    weights = drop / np.maximum(drop.sum(axis=0), 1e-12)
    area = res * res
    flat_flux = flux.ravel()
    wflat = weights.reshape(8, -1)
    bflat = balance.ravel() * area
    for idx in order:
        q = flat_flux[idx] + bflat[idx]
        if q <= 0:
            flat_flux[idx] = q
            continue
        flat_flux[idx] = q
        r, c = divmod(int(idx), w)
        for k, (dy, dx) in enumerate(offsets):
            wk = wflat[k, idx]
            if wk > 0:
                rr, cc = r + dy, c + dx
                if 0 <= rr < h and 0 <= cc < w:
                    flat_flux[rr * w + cc] += q * wk
    return flux


def _glaciers(
    rng: np.random.Generator, z: np.ndarray, res: float, ela: float
) -> tuple[np.ndarray, np.ndarray]:
    """Glacier and debris masks on the full grid, computed on a coarse grid and refined."""
    h, w = z.shape
    factor = max(4, int(math.ceil(max(h, w) / 256)))
    coarse = ndimage.zoom(ndimage.uniform_filter(z, factor), 1 / factor, order=1)
    cres = res * factor
    slope_c, _ = _slope_aspect(coarse, cres)
    # mass balance 0.8 m w.e. per 100 m, capped at +1.5; steep faces shed their snow
    balance = np.clip(0.008 * (coarse - ela), -6.0, 1.5)
    balance = np.where((balance > 0) & (slope_c > math.radians(38)), 0.05 * balance, balance)
    flux = _balance_flux(coarse, balance, cres)
    ice_c = (flux > 0.5 * cres * cres).astype(np.float64)
    ice_c = ndimage.gaussian_filter(ice_c, 0.7)
    ice = ndimage.zoom(ice_c, (h / ice_c.shape[0], w / ice_c.shape[1]), order=1) > 0.45
    ice = ice[:h, :w]
    slope, _ = _slope_aspect(z, res)
    ice &= slope < math.radians(44)  # steep rock stays bare: nunataks
    ice = ndimage.binary_opening(ice, iterations=2)
    labels, n = ndimage.label(ice)
    if n:
        sizes = ndimage.sum(ice, labels, index=np.arange(1, n + 1))
        ice = np.isin(labels, 1 + np.flatnonzero(sizes >= 200))
    # holes under 40 pixels (0.004 km^2) are noise, not nunataks: fill them
    holes = ndimage.binary_fill_holes(ice) & ~ice
    hl, hn = ndimage.label(holes)
    if hn:
        hs = ndimage.sum(holes, hl, index=np.arange(1, hn + 1))
        ice |= np.isin(hl, 1 + np.flatnonzero(hs < 40))
    # debris-covered lower tongues of valley glaciers
    labels, n = ndimage.label(ice)
    debris = np.zeros_like(ice)
    if n:
        idx = np.arange(1, n + 1)
        zmin = ndimage.minimum(z, labels, idx)
        size = ndimage.sum(ice, labels, idx)
        noise = 40.0 * _fbm(rng, z.shape, beta=2.8)
        lut_zmin = np.concatenate([[np.inf], zmin])
        lut_big = np.concatenate([[False], size > 800])
        with np.errstate(invalid="ignore"):
            cut = lut_zmin[labels] + 0.6 * (ela - lut_zmin[labels]) + noise
        debris = ice & lut_big[labels] & (z < cut)
    return ice, debris


def _lakes(rng: np.random.Generator, z: np.ndarray, ice: np.ndarray, margin: int = 0) -> np.ndarray:
    """Proglacial lakes just below the termini of the largest glaciers (termini at least
    ``margin`` pixels from the edge: a range's valleys run out of the region, with their lakes)."""
    h, w = z.shape
    labels, n = ndimage.label(ice)
    water = np.zeros_like(ice)
    if not n:
        return water
    sizes = ndimage.sum(ice, labels, np.arange(1, n + 1))
    yy, xx = np.mgrid[0:h, 0:w]
    gy, gx = np.gradient(ndimage.gaussian_filter(z, 6))
    wanted, made = rng.integers(1, 4), 0
    for lab in 1 + np.argsort(sizes)[::-1]:
        cells = np.flatnonzero((labels == lab).ravel())
        r, c = divmod(int(cells[np.argmin(z.ravel()[cells])]), w)
        if min(r, c, h - 1 - r, w - 1 - c) < margin:
            continue
        made += 1
        if made > wanted:
            break
        g = np.hypot(gy[r, c], gx[r, c]) + 1e-9
        radius = rng.uniform(12, 25)
        cy, cx = r - gy[r, c] / g * radius * 1.2, c - gx[r, c] / g * radius * 1.2
        blob = ((yy - cy) / radius) ** 2 + ((xx - cx) / (radius * rng.uniform(0.6, 1.4))) ** 2 < 1
        water |= blob & ~ice & (z < z[r, c] + 40)
    return ndimage.binary_opening(water, iterations=2)


# ----------------------------------------------------------------------------- per-date scenes


def _clouds(rng: np.random.Generator, shape: tuple[int, int], cover: float) -> tuple[np.ndarray, np.ndarray]:
    """Cloud optical density in [0, 1] covering about ``cover`` of the scene, and the shadow mask."""
    if cover <= 0:
        return np.zeros(shape), np.zeros(shape, bool)
    f = _fbm(rng, shape, beta=3.4)
    thr = np.quantile(f, 1 - cover)
    density = np.clip((f - thr) / 0.6, 0, 1)
    cloud = density > 0
    dy, dx = (int(0.04 * shape[0]), int(0.05 * shape[1]))
    shadow = np.zeros(shape, bool)
    shadow[dy:, dx:] = cloud[: shape[0] - dy, : shape[1] - dx]
    return density, shadow & ~cloud


def _surface_classes(
    z: np.ndarray, slope: np.ndarray, ice: np.ndarray, debris: np.ndarray, water: np.ndarray,
    snowline: float, ela: float, patches: np.ndarray, vegline: np.ndarray,
) -> np.ndarray:
    """Class per pixel for one date (before clouds)."""
    cls = np.full(z.shape, _ROCK, np.uint8)
    cls[(z < vegline) & (slope < math.radians(35))] = _VEG
    cls[(z > snowline + 250) & (patches > 0.8) & (slope < math.radians(40))] = _SNOW
    cls[water] = _WATER
    on_ice = np.where(z >= ela + 120, _SNOW, np.where(z >= ela, _FIRN, np.where(z >= snowline, _SNOW, _ICE)))
    cls[ice] = on_ice[ice]
    cls[debris] = _DEBRIS
    return cls


# ----------------------------------------------------------------------------- writing


def _write_cog(path: Path, data: np.ndarray, transform: Affine, crs: str, nodata: float | None,
               blocksize: int = 256, sparse: bool = False) -> None:
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(
        driver="COG", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype.name,
        crs=crs, transform=transform, nodata=nodata, compress="DEFLATE", blocksize=blocksize,
        overview_resampling="average" if data.dtype.kind == "f" else "nearest",
    )
    if sparse:
        profile["sparse_ok"] = True  # blocks all at nodata are not written (GDAL reads them as nodata)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _footprint(bounds: tuple[float, float, float, float], crs: str) -> tuple[dict, list[float]]:
    xmin, ymin, xmax, ymax = bounds
    xs = np.array([xmin, xmax, xmax, xmin, xmin])
    ys = np.array([ymin, ymin, ymax, ymax, ymin])
    if CRS.from_user_input(crs).is_geographic:
        lon, lat = xs, ys
    else:
        lon, lat = lonlat_of(CRS.from_user_input(crs), xs, ys)
    ring = [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat, strict=True)]
    bbox = [min(lon), min(lat), max(lon), max(lat)]
    return {"type": "Polygon", "coordinates": [ring]}, [round(float(v), 7) for v in bbox]


_PROJ_V11 = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
_PROJ_V2 = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
_RASTER = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
_EO = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
_SAR = "https://stac-extensions.github.io/sar/v1.0.0/schema.json"


def _asset(path: Path, transform: Affine, shape: tuple[int, int], band: dict, roles: list[str],
           proj_code: str | None = None) -> dict:
    a = {
        "href": path.resolve().as_uri(),
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": roles,
        "proj:shape": list(shape),
        "proj:transform": [transform.a, transform.b, transform.c, transform.d, transform.e, transform.f],
        "raster:bands": [dict(band)],
    }
    if proj_code:
        a["proj:code"] = proj_code
    return a


def _collection(cid: str, title: str, bbox: list[float], interval: list[str], extensions: list[str]) -> dict:
    return {
        "type": "Collection", "stac_version": "1.0.0", "stac_extensions": extensions, "id": cid,
        "title": title, "description": f"Synthetic {title} written by glacierxr.synthetic.make_region",
        "license": "CC0-1.0", "links": [],
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}},
    }


def _s1_item(iid: str, geom: dict, bbox: list[float], t: dt.datetime, code: str, assets: dict) -> dict:
    """A Sentinel-1 RTC item as Planetary Computer publishes it."""
    return {
        "type": "Feature", "stac_version": "1.0.0", "stac_extensions": [_PROJ_V2, _RASTER, _SAR],
        "id": iid, "collection": "sentinel-1-rtc", "geometry": geom, "bbox": bbox,
        "properties": {
            "datetime": _iso(t), "platform": "SENTINEL-1A", "constellation": "Sentinel-1",
            "sar:product_type": "GRD", "sar:instrument_mode": "IW", "sar:polarizations": ["VV", "VH"],
            "sar:frequency_band": "C", "sar:observation_direction": "right",
            "sat:orbit_state": "descending", "proj:code": code,
        },
        "assets": assets, "links": [],
    }


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ----------------------------------------------------------------------------- MGRS-like layout

_LAT_BANDS = "CDEFGHJKLMNPQRSTUVWX"
_COL_LETTERS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"


def _region_polygon(transform: Affine, shape: tuple[int, int], crs: CRS, n: int = 32):
    """The master grid's outline in lon/lat, each side densified to ``n`` points (edges curve)."""
    from shapely.geometry import Polygon

    xmin, ymin, xmax, ymax = bounds_of(transform, shape)
    t = np.linspace(0.0, 1.0, n, endpoint=False)
    xs = np.concatenate([xmin + (xmax - xmin) * t, np.full(n, xmax), xmax - (xmax - xmin) * t, np.full(n, xmin)])
    ys = np.concatenate([np.full(n, ymin), ymin + (ymax - ymin) * t, np.full(n, ymax), ymax - (ymax - ymin) * t])
    lon, lat = lonlat_of(crs, xs, ys)
    return Polygon(zip(np.asarray(lon, float), np.asarray(lat, float), strict=True))


def _zone_number(lon: float) -> int:
    return min(int((lon + 180.0) // 6.0) + 1, 60)


def _zones_of(poly_ll) -> list[str]:
    """EPSG codes of the UTM zones a lon/lat polygon touches, west to east (hemisphere of its centre)."""
    west, south, east, north = poly_ll.bounds
    base = 32600 if (south + north) / 2 >= 0 else 32700
    return [f"EPSG:{base + k}" for k in range(_zone_number(west), _zone_number(east) + 1)]


def _zone_lon_range(code: str) -> tuple[float, float]:
    """``(west, east)`` longitudes of a UTM zone given as ``'EPSG:326zz'``/``'EPSG:327zz'``."""
    k = int(code.split(":")[1]) % 100
    return -180.0 + 6.0 * (k - 1), -180.0 + 6.0 * k


def _mgrs_code(zone: int, lat: float, i: int, j: int) -> str:
    """An MGRS-like code (``45RVL``) for tile column ``i`` / row ``j`` of the scaled-down zone grid.

    Built like MGRS 100 km squares (column letters cycle with the zone set, row letters with an
    offset of five in even zones), only on the scaled tile grid instead of 100 km.
    """
    band = _LAT_BANDS[min(max(int((lat + 80.0) // 8.0), 0), len(_LAT_BANDS) - 1)]
    col = _COL_LETTERS[(zone - 1) % 3][(i - 1) % 8]
    row = _ROW_LETTERS[(j + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone:02d}{band}{col}{row}"


def _to_lonlat_geom(geom, crs: CRS):
    """A shapely geometry in ``crs`` as a GeoJSON dict and a bbox list in lon/lat (7 decimals)."""
    import shapely
    from shapely.geometry import mapping

    ll = shapely.transform(geom, lambda xy: np.round(np.column_stack(lonlat_of(crs, xy[:, 0], xy[:, 1])), 7))
    return mapping(ll), [round(float(v), 7) for v in ll.bounds]


def _warp(src: np.ndarray, src_transform: Affine, src_crs: CRS, dst_shape: tuple[int, ...], dst_transform: Affine,
          dst_crs: CRS, nodata: float, resampling: str = "nearest") -> np.ndarray:
    """``src`` (bands, y, x) or (y, x) warped onto another grid with rasterio; ``nodata`` outside."""
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    dst = np.full(dst_shape, nodata, dtype=src.dtype)
    reproject(
        src, dst, src_transform=src_transform, src_crs=src_crs, dst_transform=dst_transform, dst_crs=dst_crs,
        src_nodata=nodata, dst_nodata=nodata, resampling=Resampling[resampling], num_threads=1,
    )
    return dst


def _dem_id(lat: int, lon: int) -> str:
    ns = f"N{lat:02d}" if lat >= 0 else f"S{-lat:02d}"
    ew = f"E{lon:03d}" if lon >= 0 else f"W{-lon:03d}"
    return f"Copernicus_DSM_COG_10_{ns}_00_{ew}_00_DEM"


def _publish_mgrs(
    cog_dir: Path, *, name: str, master: CRS, t10: Affine, shape: tuple[int, int], times: list[dt.datetime],
    dn10: np.ndarray, dn20: np.ndarray, scl: np.ndarray, vv: np.ndarray, vh: np.ndarray, z: np.ndarray,
    baseline: str, offset: float, tile_px: int,
) -> dict:
    """Write the master-grid world as per-zone S2 tiles, per-zone S1 scenes and 1-degree DEM tiles.

    Returns the STAC items per collection, the region's lon/lat bbox, the DEM bbox, the tile
    layout and the zones used.
    """
    import shapely
    from shapely.geometry import box

    res = 10.0
    t20 = Affine(2 * res, 0, t10.c, 0, -2 * res, t10.f)
    region_ll = _region_polygon(t10, shape, master)
    lon_w, lat_s, lon_e, lat_n = region_ll.bounds
    # rounded outward to 1e-7 degrees so that the bbox covers the whole region
    bbox = [math.floor(lon_w * 1e7) / 1e7, math.floor(lat_s * 1e7) / 1e7,
            math.ceil(lon_e * 1e7) / 1e7, math.ceil(lat_n * 1e7) / 1e7]
    zones = _zones_of(region_ll)
    lat_c = (lat_s + lat_n) / 2
    size = tile_px * res
    step = 2 * round(0.45 * tile_px) * res  # ~0.9 of the tile side, on the 20 m grid
    s2_items: list[dict] = []
    s1_items: list[dict] = []
    tiles: list[S2Tile] = []
    for code in zones:
        zcrs = CRS.from_user_input(code)
        znum = int(code.split(":")[1]) % 100
        west, east = _zone_lon_range(code)

        def to_zone(geom, zcrs=zcrs):
            return shapely.transform(geom, lambda ll: np.column_stack(xy_of(zcrs, ll[:, 0], ll[:, 1])))

        # the region on this zone's grid, and the part of it inside the zone's own strip
        region_z = to_zone(_region_polygon(t10, shape, master, n=64)).buffer(0)
        part_ll = region_ll.intersection(box(west, -90, east, 90))
        if part_ll.is_empty or part_ll.area == 0:
            continue
        part_z = to_zone(part_ll).buffer(60.0)  # 60 m: no gap along the zone line
        # --- Sentinel-2: square tiles of `size` on a grid of `step`, each holding the world in it
        xmin, ymin, xmax, ymax = part_z.bounds
        i_range = range(math.floor((xmin - size) / step) + 1, math.floor(xmax / step) + 1)
        j_range = range(math.floor(ymin / step) + 1, math.floor((ymax + size) / step) + 1)
        seen: set[str] = set()
        for j in reversed(j_range):  # north to south
            for i in i_range:
                left, top = i * step, j * step
                square = box(left, top - size, left + size, top)
                if not square.intersects(part_z) or square.intersection(region_z).area <= 0:
                    continue
                tcode = _mgrs_code(znum, lat_c, i, j)
                if tcode in seen:
                    raise GridError(
                        f"The region spans too many Sentinel-2 tiles of {tile_px} px in {code} for unique "
                        f"MGRS-like codes ({tcode} twice); pass a larger s2_tile_px."
                    )
                seen.add(tcode)
                tt10 = Affine(res, 0, left, 0, -res, top)
                tt20 = Affine(2 * res, 0, left, 0, -2 * res, top)
                geom, gbbox = _to_lonlat_geom(square.intersection(region_z), zcrs)
                tile = S2Tile(code=tcode, crs=code, transform=tt10, shape=(tile_px, tile_px))
                for d, t in enumerate(times):
                    scl_t = _warp(scl[d], t20, master, (tile_px // 2, tile_px // 2), tt20, zcrs, 0)
                    valid = scl_t > 0
                    if not valid.any():
                        continue  # the swath misses this tile on this date: no item, like the archive
                    iid = f"S2B_{tcode}_{t:%Y%m%d}_0_L2A"
                    b10 = _warp(dn10[d], t10, master, (4, tile_px, tile_px), tt10, zcrs, _S2_NODATA)
                    b20 = _warp(dn20[d], t20, master, (tile_px // 2, tile_px // 2), tt20, zcrs, _S2_NODATA)
                    assets = {}
                    for k, (band, (key, gsd)) in enumerate(S2_BANDS.items()):
                        data, tr = (b20, tt20) if band == "B11" else (b10[k], tt10)
                        path = cog_dir / iid / f"{band}.tif"
                        _write_cog(path, data, tr, code, _S2_NODATA)
                        rb = {"nodata": 0, "data_type": "uint16", "spatial_resolution": gsd, "scale": 0.0001, "offset": offset}
                        assets[key] = _asset(path, tr, data.shape, rb, ["data", "reflectance"])
                        assets[key]["eo:bands"] = [{"name": band, "common_name": key}]
                        assets[key]["gsd"] = gsd
                    path = cog_dir / iid / "SCL.tif"
                    _write_cog(path, scl_t, tt20, code, 0)
                    assets["scl"] = _asset(path, tt20, scl_t.shape, _SCL_BAND, ["data"])
                    cloud_pct = float(np.isin(scl_t[valid], (8, 9, 10)).mean() * 100)
                    s2_items.append({
                        "type": "Feature", "stac_version": "1.0.0", "stac_extensions": [_PROJ_V11, _RASTER, _EO],
                        "id": iid, "collection": "sentinel-2-l2a", "geometry": geom, "bbox": gbbox,
                        "properties": {
                            "datetime": _iso(t), "platform": "sentinel-2b", "constellation": "sentinel-2",
                            "instruments": ["msi"], "eo:cloud_cover": round(cloud_pct, 4), "proj:epsg": zcrs.to_epsg(),
                            "s2:processing_baseline": baseline, "earthsearch:boa_offset_applied": False,
                            "grid:code": f"MGRS-{tcode}", "mgrs:utm_zone": znum, "mgrs:latitude_band": tcode[2],
                            "mgrs:grid_square": tcode[3:], "s2:nodata_pixel_percentage": round(float((~valid).mean() * 100), 4),
                        },
                        "assets": assets, "links": [],
                    })
                    tile.item_ids.append(iid)
                if tile.item_ids:
                    tiles.append(tile)
        # --- Sentinel-1: one scene per zone and date, on the zone's grid around its part of the region
        sx0, sy0, sx1, sy1 = part_z.buffer(600.0).intersection(region_z).bounds
        sx0, sy1 = math.floor(sx0 / 20) * 20, math.ceil(sy1 / 20) * 20
        scols, srows = int(math.ceil((sx1 - sx0) / res)), int(math.ceil((sy1 - sy0) / res))
        ts1 = Affine(res, 0, sx0, 0, -res, sy1)
        geom, gbbox = _to_lonlat_geom(box(*bounds_of(ts1, (srows, scols))).intersection(region_z), zcrs)
        for d, t in enumerate(times):
            t1 = t + dt.timedelta(days=1, hours=7)
            iid = f"S1A_IW_GRDH_1SDV_{t1:%Y%m%dT%H%M%S}_{name}_{znum:02d}_rtc"
            both = _warp(np.stack([vv[d], vh[d]]), t10, master, (2, srows, scols), ts1, zcrs, _S1_NODATA)
            assets = {}
            for k, key in enumerate(("vv", "vh")):
                path = cog_dir / iid / f"{key}.tif"
                _write_cog(path, both[k], ts1, code, _S1_NODATA)
                assets[key] = _asset(path, ts1, (srows, scols), _S1_BAND, ["data"], proj_code=code)
            s1_items.append(_s1_item(iid, geom, gbbox, t1, code, assets))
    # --- DEM: exact 1-degree tiles at 1 arc-second, the surface sampled where the region is, NaN elsewhere
    arcsec = 1 / 3600
    dem_items: list[dict] = []
    margin = 12 * arcsec  # like the single layout's DEM: a few pixels beyond the region's bbox
    dw, ds, de, dn_ = lon_w - margin, lat_s - margin, lon_e + margin, lat_n + margin
    for lat in range(math.floor(ds), math.ceil(dn_)):
        for lon in range(math.floor(dw), math.ceil(de)):
            tdem = Affine(arcsec, 0, lon, 0, -arcsec, lat + 1)
            c0, c1 = max(0, math.floor((dw - lon) * 3600)), min(3600, math.ceil((de - lon) * 3600))
            r0, r1 = max(0, math.floor((lat + 1 - dn_) * 3600)), min(3600, math.ceil((lat + 1 - ds) * 3600))
            if c1 <= c0 or r1 <= r0:
                continue
            dem = np.full((3600, 3600), np.nan, np.float32)
            glon, glat = np.meshgrid(lon + (np.arange(c0, c1) + 0.5) * arcsec, lat + 1 - (np.arange(r0, r1) + 0.5) * arcsec)
            px, py = xy_of(master, glon, glat)
            col = (px - t10.c) / res - 0.5
            row = (t10.f - py) / res - 0.5
            dem[r0:r1, c0:c1] = ndimage.map_coordinates(z, [row, col], order=1, mode="nearest")
            iid = _dem_id(lat, lon)
            path = cog_dir / iid / "data.tif"
            _write_cog(path, dem, tdem, "EPSG:4326", float("nan"), blocksize=1024, sparse=True)
            dgeom, dbbox = _footprint((lon, lat, lon + 1, lat + 1), "EPSG:4326")
            dem_items.append({
                "type": "Feature", "stac_version": "1.0.0", "stac_extensions": [_PROJ_V2, _RASTER],
                "id": iid, "collection": "cop-dem-glo-30", "geometry": dgeom, "bbox": dbbox,
                "properties": {"datetime": "2021-04-22T00:00:00Z", "platform": "tandem-x", "proj:code": "EPSG:4326",
                               "proj:shape": [3600, 3600], "proj:transform": list(tdem)[:6]},
                "assets": {"data": {
                    "href": path.resolve().as_uri(), "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                    "roles": ["data"], "raster:bands": [dict(_DEM_BAND)],
                }},
                "links": [],
            })
    dem_bbox = [min(it["bbox"][0] for it in dem_items), min(it["bbox"][1] for it in dem_items),
                max(it["bbox"][2] for it in dem_items), max(it["bbox"][3] for it in dem_items)]
    used = [c for c in zones if any(t.crs == c for t in tiles)]
    return {"s2": s2_items, "s1": s1_items, "dem": dem_items, "bbox": bbox, "dem_bbox": dem_bbox,
            "tiles": tiles, "zones": used}


# ----------------------------------------------------------------------------- main entry


def world(rng: np.random.Generator, shape: tuple[int, int], res: float = 10.0, *, terrain: str = "range",
          ela: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """The static world of :func:`make_region`: terrain, ice, debris and the truth's entities.

    Returns
    -------
    z, ice, debris, glaciers, complexes, ela
        Elevation (m), glacier and debris masks, truth glacier and complex labels (int32, 0: no
        ice) and the equilibrium-line altitude used.
    """
    if terrain == "range":
        from glacierxr.ranges import glacier_entities, range_terrain

        z, catchments = range_terrain(rng, shape, res)
    else:
        z, catchments = _terrain(rng, shape), None
    ela = float(ela if ela is not None else np.quantile(z, 0.42 if terrain == "range" else 0.7))
    ice, debris = _glaciers(rng, z, res, ela)
    if catchments is None:
        complexes = ndimage.label(ice, structure=np.ones((3, 3)))[0].astype(np.int32)
        return z, ice, debris, complexes, complexes, ela
    glaciers, complexes = glacier_entities(ice, catchments)
    return z, ice, debris, glaciers, complexes, ela


def make_region(
    out_dir: str | Path,
    *,
    seed: int = 0,
    shape: tuple[int, int] = (1024, 1024),
    center: tuple[float, float] = (86.92, 27.98),
    crs: str | int | None = None,
    dates: int = 3,
    year: int = 2023,
    cloud_cover: tuple[float, ...] = (0.0, 0.22, 0.08),
    ela: float | None = None,
    name: str | None = None,
    tiling: str = "auto",
    s2_tile_px: int | None = None,
    terrain: str = "range",
) -> Region:
    """Write a seeded synthetic glaciated region as COGs + STAC and return where it lies.

    Parameters
    ----------
    out_dir
        Folder to write into (created). Holds ``cogs/``, ``stac/`` and ``truth/``.
    seed
        Random seed: the same seed gives the same region, bit for bit.
    shape
        ``(rows, cols)`` of the 10 m grid; both even (B11 and SCL are at 20 m).
    center
        ``(lon, lat)`` of the region centre; any UTM zone, either hemisphere.
    crs
        CRS of the optical/radar rasters; the UTM zone of ``center`` by default.
    dates
        Number of Sentinel-2 acquisitions (every 15 days from 1 August of ``year``; each
        Sentinel-1 acquisition is one day later). In the southern hemisphere the dates start
        on 1 February.
    year
        Acquisition year. From 2022 on, items carry processing baseline 05.09 and the L2A
        offset of -0.1 (DN = (reflectance + 0.1) * 10000); before, baseline 03.01 and offset 0.
    cloud_cover
        Cloud fraction per date (cycled when shorter than ``dates``).
    ela
        Equilibrium-line altitude in metres; by default the 42 % elevation quantile for
        ``terrain="range"`` and the 70 % quantile for ``"massif"``.
    name
        Item-id prefix; ``f"synth{seed}"`` by default.
    tiling
        How the rasters are published. ``"single"``: one Sentinel-2 and one Sentinel-1 item per
        date on the region's own grid and one DEM item covering it (the classic layout).
        ``"mgrs"``: like the real archives, per UTM zone the region touches: Sentinel-2 items per
        overlapping MGRS-like tile in that zone's CRS, one Sentinel-1 item per zone and date, and
        1-degree Copernicus-style DEM tiles; the true outlines are then written in EPSG:4326.
        ``"auto"`` (default): ``"mgrs"`` when the region crosses a UTM zone boundary and ``crs``
        is not given, ``"single"`` otherwise.
    s2_tile_px
        Side of the square Sentinel-2 tiles in 10 m pixels for ``tiling="mgrs"`` (even, at least
        64); tiles sit on a grid of 0.9 times that, so neighbours overlap by ~10 % like the real
        109.8 km tiles on their 100 km grid. By default 0.6 of the region's longer side.
    terrain
        ``"range"`` (default): a mountain range of crest, spurs and valleys with valley, cirque
        and hanging glaciers, split into glaciers at their ice divides in the truth
        (:mod:`glacierxr.ranges`). ``"massif"``: the older single massif of fractal terrain,
        whose truth glaciers are its connected ice masses (kept for the tests and benchmarks
        whose numbers were measured on it).

    Returns
    -------
    Region
        Paths, geometry and the true arrays.

    Raises
    ------
    GridError
        When ``shape``, ``dates``, ``tiling`` or ``s2_tile_px`` is invalid.

    Notes
    -----
    The world (terrain, glaciers, surfaces per date) is always generated on one master grid, the
    UTM grid of ``center`` (or ``crs``), and :attr:`Region.arrays` holds it. With
    ``tiling="mgrs"`` every raster is a copy warped from that grid with
    :func:`rasterio.warp.reproject`: nearest neighbour for reflectance, SCL and backscatter (so
    that class boundaries stay crisp), bilinear sampling of the surface for the DEM. Pixels of a
    tile outside the region are nodata (0 for Sentinel-2, -32768 for Sentinel-1, NaN for the DEM).
    """
    h, w = int(shape[0]), int(shape[1])
    if h < 64 or w < 64 or h % 2 or w % 2:
        raise GridError(f"shape={shape} must be two even sizes of at least 64 pixels, e.g. (1024, 1024).")
    if dates < 1:
        raise GridError(f"dates={dates} must be at least 1.")
    if terrain not in ("range", "massif"):
        raise GridError(f"terrain={terrain!r} is not supported; use 'range' or 'massif'.")
    if tiling not in ("auto", "single", "mgrs"):
        raise GridError(f"tiling={tiling!r} is not supported; use 'auto', 'single' or 'mgrs'.")
    if s2_tile_px is not None and not (
        isinstance(s2_tile_px, int | np.integer) and s2_tile_px >= 64 and s2_tile_px % 2 == 0
    ):
        raise GridError(f"s2_tile_px={s2_tile_px!r} must be an even number of pixels, at least 64, e.g. 512.")
    out = Path(out_dir)
    name = name or f"synth{seed}"
    rng = np.random.default_rng(seed)
    lon0, lat0 = center
    target = utm_crs(lon0, lat0) if crs is None else CRS.from_user_input(crs)
    crs_str = f"EPSG:{target.to_epsg()}"
    res = 10.0
    cx, cy = xy_of(target, np.array([lon0]), np.array([lat0]))
    x0 = math.floor((cx[0] - w * res / 2) / 60.0) * 60.0
    y1 = math.floor((cy[0] + h * res / 2) / 60.0) * 60.0
    t10 = Affine(res, 0, x0, 0, -res, y1)
    t20 = Affine(2 * res, 0, x0, 0, -2 * res, y1)
    south = lat0 < 0
    mode = tiling
    if mode == "auto":
        mode = "mgrs" if crs is None and len(_zones_of(_region_polygon(t10, (h, w), target))) > 1 else "single"
    tile_px = int(s2_tile_px) if s2_tile_px is not None else max(64, 2 * round(0.3 * max(h, w)))

    # --- static world
    z, ice, debris, entities, complexes, ela = world(rng, (h, w), res, terrain=terrain, ela=ela)
    slope, _ = _slope_aspect(z, res)
    water = _lakes(rng, z, ice, margin=60 if terrain == "range" else 0)
    lake_labels, n_lakes = ndimage.label(water)
    for lab in range(1, n_lakes + 1):
        z[lake_labels == lab] = z[lake_labels == lab].min()  # lake surfaces are flat
    illum = _illumination(z, res, sun_elev=52.0, sun_az=45.0 if south else 140.0)
    texture = 1.0 + 0.06 * _fbm(rng, (h, w), beta=1.6)
    patches = _fbm(rng, (h, w), beta=3.0)
    vegline = np.quantile(z, 0.12) + 120 * _fbm(rng, (h, w), beta=2.5)

    # --- per date
    start = dt.datetime(year, 2 if south else 8, 1, 5, 12, 31)
    times = [start + dt.timedelta(days=15 * i) for i in range(dates)]
    baseline = "05.09" if year >= 2022 else "03.01"
    offset = -0.1 if baseline >= _S2_OFFSET_BASELINE else 0.0
    refl = np.zeros((dates, 4, h, w), np.float32)
    b11 = np.zeros((dates, h // 2, w // 2), np.float32)
    scl = np.zeros((dates, h // 2, w // 2), np.uint8)
    classes = np.zeros((dates, h, w), np.uint8)
    vv = np.zeros((dates, h, w), np.float32)
    vh = np.zeros((dates, h, w), np.float32)
    spectra = np.array([REFLECTANCE[c] for c in CLASSES[:_CLOUD + 1]], np.float64)
    sigma0 = np.array([BACKSCATTER_DB[c] for c in CLASSES[:_DEBRIS + 1]], np.float64)
    for d in range(dates):
        snowline = ela - 220 + 90 * d
        cls = _surface_classes(z, slope, ice, debris, water, snowline, ela, patches - 0.15 * d, vegline)
        density, shadow = _clouds(rng, (h, w), cloud_cover[d % len(cloud_cover)])
        surface = spectra[cls] * (illum * texture)[..., None]
        sky = spectra[_CLOUD][None, None, :] * density[..., None]
        shaded = np.where(shadow[..., None], 0.25, 1.0)
        full = surface * shaded * (1 - density[..., None]) + sky
        full += rng.normal(0, 0.004, full.shape)
        full = np.clip(full, 1e-4, 1.5)
        refl[d] = np.moveaxis(full[..., :4], -1, 0).astype(np.float32)
        b11[d] = full[..., 4].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).astype(np.float32)
        cls_obs = cls.copy()
        cls_obs[shadow] = _SHADOW
        cls_obs[density > 0] = _CLOUD
        classes[d] = cls_obs
        # SCL at 20 m: the class of the top-left 10 m pixel, clouds by density, like Sen2Cor's layers
        s = np.vectorize(lambda c: _SCL_OF_CLASS.get(c, 7), otypes=[np.uint8])(cls)[::2, ::2]
        s[(illum[::2, ::2] < 0.25) & (s != 11)] = 2
        dens20 = density[::2, ::2]
        s[shadow[::2, ::2]] = 3
        s[(dens20 > 0) & (dens20 < 0.15)] = 10
        s[(dens20 >= 0.15) & (dens20 < 0.5)] = 8
        s[dens20 >= 0.5] = 9
        s[rng.random(s.shape) < 2e-4] = 1  # defective pixels
        scl[d] = s
        # Sentinel-1 RTC: class backscatter, residual terrain effect, gamma speckle (ENL 4.4)
        db = sigma0[np.minimum(cls, _DEBRIS)] + (2.0 * (illum - 1.0))[..., None] * 0.5
        look = rng.gamma(4.4, 1 / 4.4, size=(h, w, 2))
        lin = 10 ** (db / 10) * look
        vv[d], vh[d] = lin[..., 0].astype(np.float32), lin[..., 1].astype(np.float32)
    # one date is cut by the edge of its tile's swath: a no-data corner
    nodata10 = np.zeros((dates, h, w), bool)
    if dates > 1:
        yy, xx = np.mgrid[0:h, 0:w]
        nodata10[-1] = (yy / h + xx / w) > 1.75
    nodata20 = nodata10[:, ::2, ::2]
    scl[nodata20] = 0

    # --- write COGs and STAC
    cog_dir, stac_dir, truth_dir = out / "cogs", out / "stac", out / "truth"
    tiles: list[S2Tile] = []
    zones = [crs_str]
    dem = None
    if mode == "mgrs":
        dn10 = np.clip(np.round((refl - offset) * 10000), 1, 65535).astype(np.uint16)
        dn10[np.broadcast_to(nodata10[:, None], dn10.shape)] = _S2_NODATA
        dn20 = np.clip(np.round((b11 - offset) * 10000), 1, 65535).astype(np.uint16)
        dn20[nodata20] = _S2_NODATA
        pub = _publish_mgrs(
            cog_dir, name=name, master=target, t10=t10, shape=(h, w), times=times, dn10=dn10, dn20=dn20,
            scl=scl, vv=vv, vh=vh, z=z, baseline=baseline, offset=offset, tile_px=tile_px,
        )
        s2_items, s1_items, dem_items = pub["s2"], pub["s1"], pub["dem"]
        bbox, dbbox, tiles, zones = pub["bbox"], pub["dem_bbox"], pub["tiles"], pub["zones"]
        ids = {cid: [it["id"] for it in items] for cid, items in
               (("sentinel-2-l2a", s2_items), ("sentinel-1-rtc", s1_items), ("cop-dem-glo-30", dem_items))}
    else:
        region_bounds = bounds_of(t10, (h, w))
        geom, bbox = _footprint(region_bounds, crs_str)
        ids: dict[str, list[str]] = {"sentinel-2-l2a": [], "sentinel-1-rtc": [], "cop-dem-glo-30": []}
        s2_items, s1_items = [], []
        for d, t in enumerate(times):
            iid = f"S2B_{name}_{t:%Y%m%d}_0_L2A"
            assets = {}
            for i, (band, (key, gsd)) in enumerate(S2_BANDS.items()):
                values = b11[d] if band == "B11" else refl[d, i]
                mask = nodata20[d] if band == "B11" else nodata10[d]
                dn = np.clip(np.round((values - offset) * 10000), 1, 65535).astype(np.uint16)
                dn[mask] = _S2_NODATA
                path = cog_dir / iid / f"{band}.tif"
                tr = t20 if gsd == 20 else t10
                _write_cog(path, dn, tr, crs_str, _S2_NODATA)
                rb = {"nodata": 0, "data_type": "uint16", "spatial_resolution": gsd, "scale": 0.0001, "offset": offset}
                assets[key] = _asset(path, tr, dn.shape, rb, ["data", "reflectance"])
                assets[key]["eo:bands"] = [{"name": band, "common_name": key if key != "swir16" else "swir16"}]
                assets[key]["gsd"] = gsd
            path = cog_dir / iid / "SCL.tif"
            _write_cog(path, scl[d], t20, crs_str, 0)
            assets["scl"] = _asset(path, t20, scl[d].shape, _SCL_BAND, ["data"])
            valid = scl[d] > 0
            cloud_pct = float(np.isin(scl[d][valid], (8, 9, 10)).mean() * 100) if valid.any() else 100.0
            s2_items.append({
                "type": "Feature", "stac_version": "1.0.0", "stac_extensions": [_PROJ_V11, _RASTER, _EO],
                "id": iid, "collection": "sentinel-2-l2a", "geometry": geom, "bbox": bbox,
                "properties": {
                    "datetime": _iso(t), "platform": "sentinel-2b", "constellation": "sentinel-2",
                    "instruments": ["msi"], "eo:cloud_cover": round(cloud_pct, 4), "proj:epsg": target.to_epsg(),
                    "s2:processing_baseline": baseline, "earthsearch:boa_offset_applied": False,
                    "grid:code": f"MGRS-{name.upper()}",
                },
                "assets": assets, "links": [],
            })
            ids["sentinel-2-l2a"].append(iid)

            t1 = t + dt.timedelta(days=1, hours=7)
            iid = f"S1A_IW_GRDH_1SDV_{t1:%Y%m%dT%H%M%S}_{name}_rtc"
            assets = {}
            for key, arr in (("vv", vv[d]), ("vh", vh[d])):
                path = cog_dir / iid / f"{key}.tif"
                _write_cog(path, arr, t10, crs_str, _S1_NODATA)
                assets[key] = _asset(path, t10, arr.shape, _S1_BAND, ["data"], proj_code=crs_str)
            s1_items.append(_s1_item(iid, geom, bbox, t1, crs_str, assets))
            ids["sentinel-1-rtc"].append(iid)

        # DEM: 1 arc-second geographic grid like Copernicus GLO-30, sampled from the true surface
        arcsec = 1 / 3600
        lw, ls, le, ln = bbox
        dw, dn_ = math.floor(lw / arcsec) * arcsec - 4 * arcsec, math.ceil(ln / arcsec) * arcsec + 4 * arcsec
        dcols = int(math.ceil((le - dw) / arcsec)) + 8
        drows = int(math.ceil((dn_ - ls) / arcsec)) + 8
        tdem = Affine(arcsec, 0, dw, 0, -arcsec, dn_)
        lons = dw + (np.arange(dcols) + 0.5) * arcsec
        lats = dn_ - (np.arange(drows) + 0.5) * arcsec
        glon, glat = np.meshgrid(lons, lats)
        px, py = xy_of(target, glon, glat)
        col = (px - x0) / res - 0.5
        row = (y1 - py) / res - 0.5
        dem = ndimage.map_coordinates(z, [row, col], order=1, mode="nearest").astype(np.float32)
        iid = f"Copernicus_DSM_COG_10_{name}_DEM"
        path = cog_dir / iid / "data.tif"
        _write_cog(path, dem, tdem, "EPSG:4326", None)
        dgeom, dbbox = _footprint(bounds_of(tdem, dem.shape), "EPSG:4326")
        dem_item = {
            "type": "Feature", "stac_version": "1.0.0", "stac_extensions": [_PROJ_V2, _RASTER],
            "id": iid, "collection": "cop-dem-glo-30", "geometry": dgeom, "bbox": dbbox,
            "properties": {"datetime": "2021-04-22T00:00:00Z", "platform": "tandem-x", "proj:code": "EPSG:4326",
                           "proj:shape": [drows, dcols], "proj:transform": list(tdem)[:6]},
            "assets": {"data": {
                "href": path.resolve().as_uri(), "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"], "raster:bands": [dict(_DEM_BAND)],
            }},
            "links": [],
        }
        ids["cop-dem-glo-30"].append(iid)
        dem_items = [dem_item]
        tiles = [S2Tile(code=name.upper(), crs=crs_str, transform=t10, shape=(h, w), item_ids=list(ids["sentinel-2-l2a"]))]

    interval = [_iso(times[0]), _iso(times[-1] + dt.timedelta(days=2))]
    collections = {
        "sentinel-2-l2a": (_collection("sentinel-2-l2a", "Sentinel-2 Level-2A", bbox, interval,
                                       [_PROJ_V11, _RASTER, _EO]), s2_items),
        "sentinel-1-rtc": (_collection("sentinel-1-rtc", "Sentinel-1 Radiometrically Terrain Corrected (RTC)", bbox,
                                       interval, [_PROJ_V2, _RASTER, _SAR]), s1_items),
        "cop-dem-glo-30": (_collection("cop-dem-glo-30", "Copernicus DEM GLO-30", dbbox, ["2021-04-22T00:00:00Z", None],
                                       [_PROJ_V2, _RASTER]), dem_items),
    }
    for cid, (coll, items) in collections.items():
        folder = stac_dir / cid
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "collection.json").write_text(json.dumps(coll, indent=1))
        (folder / "items.ndjson").write_text("".join(json.dumps(it) + "\n" for it in items))

    # --- truth
    truth_dir.mkdir(parents=True, exist_ok=True)
    truth_path = truth_dir / "glaciers.gpkg"
    truth_crs = "EPSG:4326" if mode == "mgrs" else crs_str
    _write_outlines(truth_path, entities, complexes, debris, z, t10, crs_str, out_crs=truth_crs,
                    zones=zones if mode == "mgrs" else None)
    np.savez_compressed(truth_dir / "masks.npz", glacier=ice, debris=debris, water=water, glacier_id=entities)

    first, last = times[0].date(), (times[-1] + dt.timedelta(days=2)).date()
    arrays = {"reflectance": refl, "b11": b11, "scl": scl, "vv": vv, "vh": vh, "elevation": z.astype(np.float32),
              "dem": dem, "glacier": ice, "debris": debris, "classes": classes, "nodata": nodata10}
    if dem is None:
        del arrays["dem"]
    return Region(
        name=name, root=out, bbox=tuple(bbox), datetime=f"{first.isoformat()}/{last.isoformat()}",
        crs=crs_str, transform=t10, shape=(h, w), dates=times, stac_dir=stac_dir, truth_path=truth_path,
        collections=ids, arrays=arrays, tiling=mode, zones=list(zones), tiles=tiles, truth_crs=truth_crs,
    )


def label_polygons(labels: np.ndarray, transform: Affine, crs: str):
    """One (Multi)Polygon per positive label of a raster (8-connected, holes kept): column ``label``."""
    import geopandas as gpd
    import shapely
    from rasterio import features
    from shapely.geometry import shape as to_shape

    parts: dict[int, list] = {}
    for geom, value in features.shapes(labels.astype(np.int32), mask=labels > 0, transform=transform, connectivity=8):
        parts.setdefault(int(value), []).append(to_shape(geom))
    ids = np.array(sorted(parts), dtype=np.int64)
    geoms = [p[0] if len(p) == 1 else shapely.union_all(p) for p in (parts[i] for i in ids)]
    return gpd.GeoDataFrame({"label": ids}, geometry=geoms, crs=crs)


def _write_outlines(
    path: Path, glaciers: np.ndarray, complexes: np.ndarray, debris: np.ndarray, z: np.ndarray,
    transform: Affine, crs: str, *, out_crs: str | None = None, zones: list[str] | None = None,
) -> None:
    """Polygonise the truth (nunataks as holes) into a GeoPackage with simple attributes.

    ``path``: one row per glacier entity (label of ``glaciers``) with its ``complex_id``;
    ``complexes.gpkg`` beside it: one row per connected ice mass. Areas are measured on the
    master grid (``crs``); the outlines are then written in ``out_crs``. With ``zones`` (EPSG
    codes of UTM zones) each glacier gets a ``zones`` column naming the zones it lies in,
    comma-separated (two for a glacier across a zone boundary).
    """
    import geopandas as gpd

    def polygons(labels: np.ndarray) -> gpd.GeoDataFrame:
        return label_polygons(labels, transform, crs)

    def finish(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        gdf["area_km2"] = gdf.geometry.area / 1e6
        if out_crs is not None and CRS.from_user_input(out_crs) != CRS.from_user_input(crs):
            gdf = gdf.to_crs(out_crs)
        if zones is not None:
            from shapely.geometry import box

            ll = gdf.to_crs("EPSG:4326").geometry
            strips = {code: box(west, -90, east, 90) for code, (west, east) in
                      ((c, _zone_lon_range(c)) for c in zones)}
            gdf["zones"] = [",".join(c for c, strip in strips.items() if g.intersects(strip)) for g in ll]
        return gdf.drop(columns="label")

    gl = polygons(glaciers)
    idx = gl["label"].to_numpy()
    of_complex = ndimage.maximum(complexes, glaciers, idx) if len(idx) else np.zeros(0)
    gl.insert(0, "glac_id", [f"G{i:04d}" for i in idx])
    gl.insert(1, "complex_id", [f"C{int(c):04d}" for c in of_complex])
    if len(idx):
        gl["debris_frac"] = ndimage.mean(debris, glaciers, idx)
        gl["zmin_m"] = ndimage.minimum(z, glaciers, idx)
        gl["zmax_m"] = ndimage.maximum(z, glaciers, idx)
    else:
        gl["debris_frac"] = gl["zmin_m"] = gl["zmax_m"] = np.zeros(0)
    cx = polygons(complexes)
    cx.insert(0, "complex_id", [f"C{i:04d}" for i in cx["label"]])
    counts = np.bincount(np.asarray(of_complex, dtype=np.int64), minlength=int(complexes.max()) + 1)
    cx.insert(1, "n_glaciers", counts[cx["label"].to_numpy()])
    for frame, where in ((gl, path), (cx, path.with_name("complexes.gpkg"))):
        if where.exists():
            where.unlink()
        finish(frame).to_file(where, layer=where.stem, driver="GPKG")
