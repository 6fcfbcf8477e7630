"""Band specifications per sensor and provider: what each datacube variable is made of.

A :class:`SensorSpec` says, for one sensor, which STAC collections carry it at which provider,
which asset holds each band (providers name assets differently: Earth Search ``red``, Planetary
Computer ``B04``), the scale/offset and nodata to use when an item does not say, how to mask
it and how to resample it. Other sensors (Landsat, Gaofen, ...) are added by writing a spec and
calling :func:`register`, not by changing code.

Scale/offset precedence, per item and band:

1. Sentinel-2 items flagged ``earthsearch:boa_offset_applied`` / ``sentinel:boa_offset_applied``
   = true hold DNs that Earth Search already harmonised (the +1000 of baseline 04.00 removed):
   offset 0, whatever ``raster:bands`` says (Earth Search's ``sentinel-2-l2a`` keeps ``offset:
   -0.1`` there even for such items; see Element84/earth-search#66 and
   cirrus-geo/cirrus-earth-search#21, #33).
2. Otherwise the asset's ``raster:bands`` scale/offset when present (Earth Search
   ``sentinel-2-c1-l2a``, Landsat Collection 2).
3. Otherwise the spec's defaults; for Sentinel-2 L2A (e.g. Planetary Computer, which does not
   harmonise) the offset is -0.1 when ``s2:processing_baseline`` is >= 04.00 or, lacking that
   property, when the item is dated on or after 2022-01-25 (baseline 04.00 start), else 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pystac

from glacierxr.errors import InvalidArgumentError, MissingBandError, UnknownSensorError

__all__ = [
    "BandSpec", "MaskSpec", "SensorSpec", "PROVIDERS", "register", "get", "available", "identify",
    "asset_for", "band_href", "scale_offset", "nodata_of",
]

Kind = Literal["optical", "sar", "dem"]

#: Provider presets: name -> STAC API root URL.
PROVIDERS: dict[str, str] = {
    "earth-search": "https://earth-search.aws.element84.com/v1",
    "planetary-computer": "https://planetarycomputer.microsoft.com/api/stac/v1",
}


@dataclass(frozen=True)
class BandSpec:
    """One datacube variable and where it comes from."""

    name: str
    """Datacube variable name, e.g. ``"B04"``."""
    assets: tuple[str, ...]
    """Asset keys that may hold it, in order of preference (all providers' names)."""
    resolution: float
    """Native pixel size in metres (informative; the cube grid decides the output)."""
    scale: float = 1.0
    """Default scale when the item's asset has no ``raster:bands`` scale."""
    offset: float = 0.0
    """Default offset when the item's asset has no ``raster:bands`` offset."""
    nodata: float | None = None
    """Default nodata when the asset states none."""
    resampling: Literal["nearest", "bilinear", "cubic", "average"] = "nearest"
    """Resampling onto the cube grid."""
    index: int = 1
    """1-based band of the asset holding this variable, for multi-band assets (e.g. an RGB
    GeoTIFF or a 4-band Gaofen scene): ``BandSpec("B03", ("rgb",), 30, index=2)``."""

    def __post_init__(self) -> None:
        if int(self.index) != self.index or self.index < 1:
            raise InvalidArgumentError(f"BandSpec {self.name!r}: index={self.index!r} must be a 1-based band number.")


@dataclass(frozen=True)
class MaskSpec:
    """A per-pixel quality layer and the values to mask out."""

    band: BandSpec
    """The quality band (e.g. Sentinel-2 SCL, Landsat QA_PIXEL)."""
    values: tuple[int, ...] = ()
    """Class values to mask (``kind="classes"``)."""
    bits: tuple[int, ...] = ()
    """Bit positions that mask when set (``kind="bits"``)."""
    kind: Literal["classes", "bits"] = "classes"
    """How ``band`` is read."""


@dataclass(frozen=True)
class SensorSpec:
    """Everything glacierxr needs to know to search, stack and composite one sensor."""

    name: str
    """Sensor name used in ``gx.search(sensors=...)``, e.g. ``"sentinel-2"``."""
    kind: Kind
    """``"optical"``, ``"sar"`` or ``"dem"``: decides compositing (median / median / mosaic)."""
    collections: Mapping[str, str]
    """Provider name -> collection id; ``"local"`` is the default for unknown endpoints."""
    bands: tuple[BandSpec, ...]
    """The datacube variables this sensor provides."""
    mask: MaskSpec | None = None
    """Quality mask for optical data."""
    cloud_property: str | None = None
    """Item property with scene cloud cover in percent, for ``max_cloud``."""
    unsupported: Mapping[str, str] = field(default_factory=dict)
    """Collection ids that are recognised but cannot be stacked, with the reason and the fix."""

    @property
    def band_names(self) -> tuple[str, ...]:
        """Datacube variable names, in order."""
        return tuple(b.name for b in self.bands)

    def band(self, name: str) -> BandSpec:
        """The spec of one band (or the mask band) by name."""
        for b in self.bands + ((self.mask.band,) if self.mask else ()):
            if b.name == name:
                return b
        raise MissingBandError(f"Sensor {self.name!r} has no band {name!r}; it has {list(self.band_names)}.")

    @property
    def collection_ids(self) -> set[str]:
        """Every collection id recognised as this sensor (supported or not)."""
        return set(self.collections.values()) | set(self.unsupported)


_S2_SCALE = 1e-4
_S2_BANDS = (
    BandSpec("B02", ("blue", "B02"), 10, _S2_SCALE, 0.0, 0),
    BandSpec("B03", ("green", "B03"), 10, _S2_SCALE, 0.0, 0),
    BandSpec("B04", ("red", "B04"), 10, _S2_SCALE, 0.0, 0),
    BandSpec("B08", ("nir", "B08"), 10, _S2_SCALE, 0.0, 0),
    BandSpec("B11", ("swir16", "B11"), 20, _S2_SCALE, 0.0, 0),
)
#: SCL classes masked: no data, saturated/defective, cloud shadow, cloud medium/high, thin
#: cirrus. Class 11 (snow/ice) is kept: it is what we map.
SCL_MASKED = (0, 1, 3, 8, 9, 10)

SENTINEL_2 = SensorSpec(
    name="sentinel-2",
    kind="optical",
    collections={
        "earth-search": "sentinel-2-l2a",
        "planetary-computer": "sentinel-2-l2a",
        "local": "sentinel-2-l2a",
        "earth-search-c1": "sentinel-2-c1-l2a",
        "earth-search-v0": "sentinel-s2-l2a-cogs",
    },
    bands=_S2_BANDS,
    mask=MaskSpec(BandSpec("SCL", ("scl", "SCL"), 20, 1.0, 0.0, 0), values=SCL_MASKED),
    cloud_property="eo:cloud_cover",
    unsupported={
        "sentinel-2-l1c": "Sentinel-2 L1C is top-of-atmosphere reflectance without a scene "
        "classification; search the L2A collection ('sentinel-2-l2a') instead.",
    },
)

SENTINEL_1 = SensorSpec(
    name="sentinel-1",
    kind="sar",
    collections={"planetary-computer": "sentinel-1-rtc", "local": "sentinel-1-rtc"},
    bands=(
        BandSpec("VV", ("vv", "VV"), 10, 1.0, 0.0, -32768, "bilinear"),
        BandSpec("VH", ("vh", "VH"), 10, 1.0, 0.0, -32768, "bilinear"),
    ),
    unsupported={
        "sentinel-1-grd": "Sentinel-1 GRD items (e.g. Earth Search 'sentinel-1-grd') are in radar "
        "geometry with ground control points only; stacking them on a map grid would misplace "
        "every pixel. Use terrain-corrected data: Planetary Computer's 'sentinel-1-rtc', or run "
        "terrain correction first and catalogue the result.",
    },
)

DEM = SensorSpec(
    name="dem",
    kind="dem",
    collections={
        "earth-search": "cop-dem-glo-30",
        "planetary-computer": "cop-dem-glo-30",
        "local": "cop-dem-glo-30",
        "copernicus-90": "cop-dem-glo-90",
        "nasadem": "nasadem",
        "srtm": "srtm",
        "hma": "hma-dem",
    },
    bands=(BandSpec("elevation", ("data", "elevation", "dem"), 30, 1.0, 0.0, None, "bilinear"),),
)

LANDSAT = SensorSpec(
    name="landsat",
    kind="optical",
    collections={"earth-search": "landsat-c2-l2", "planetary-computer": "landsat-c2-l2",
                 "local": "landsat-c2-l2", "usgs": "landsat-c2l2-sr"},
    # Named as their Sentinel-2 equivalents so indices, band-ratio and models apply unchanged.
    bands=(
        BandSpec("B02", ("blue",), 30, 2.75e-5, -0.2, 0),
        BandSpec("B03", ("green",), 30, 2.75e-5, -0.2, 0),
        BandSpec("B04", ("red",), 30, 2.75e-5, -0.2, 0),
        BandSpec("B08", ("nir08",), 30, 2.75e-5, -0.2, 0),
        BandSpec("B11", ("swir16",), 30, 2.75e-5, -0.2, 0),
    ),
    # QA_PIXEL bits: 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow
    mask=MaskSpec(BandSpec("QA", ("qa_pixel",), 30, 1.0, 0.0, 1), bits=(0, 1, 2, 3, 4), kind="bits"),
    cloud_property="eo:cloud_cover",
)

_REGISTRY: dict[str, SensorSpec] = {}


def register(spec: SensorSpec, *, replace: bool = False) -> SensorSpec:
    """Add a sensor spec so that :func:`glacierxr.search` and :func:`glacierxr.open_cube` know it.

    Parameters
    ----------
    spec
        The sensor's specification.
    replace
        Allow replacing an existing spec with the same name.

    Examples
    --------
    A 4-band Gaofen-2 product catalogued locally with assets ``b1``..``b4``:

    >>> register(SensorSpec(                                   # doctest: +SKIP
    ...     name="gaofen-2", kind="optical", collections={"local": "gf2-pms"},
    ...     bands=(BandSpec("B02", ("b1",), 4), BandSpec("B03", ("b2",), 4),
    ...            BandSpec("B04", ("b3",), 4), BandSpec("B08", ("b4",), 4))))
    """
    if spec.name in _REGISTRY and not replace:
        raise UnknownSensorError(f"A sensor named {spec.name!r} is already registered; pass replace=True.")
    _REGISTRY[spec.name] = spec
    return spec


for _spec in (SENTINEL_2, SENTINEL_1, DEM, LANDSAT):
    register(_spec)


def available() -> list[str]:
    """Names of the registered sensors."""
    return sorted(_REGISTRY)


def get(name: str | SensorSpec) -> SensorSpec:
    """A registered sensor spec by name (specs pass through)."""
    if isinstance(name, SensorSpec):
        return name
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownSensorError(
            f"Unknown sensor {name!r}; known sensors: {available()}. Register others with "
            "glacierxr.sensors.register(SensorSpec(...))."
        ) from None


def identify(item: pystac.Item | Mapping[str, Any]) -> SensorSpec:
    """The sensor an item belongs to, from its collection id (or, lacking one, its platform).

    Raises
    ------
    UnknownSensorError
        When no registered sensor recognises the item.
    """
    d = item.to_dict(transform_hrefs=False) if isinstance(item, pystac.Item) else item
    coll = d.get("collection")
    for spec in _REGISTRY.values():
        if coll in spec.collection_ids:
            return spec
    platform = str(d.get("properties", {}).get("platform", "")).lower()
    for prefix, name in (("sentinel-2", "sentinel-2"), ("sentinel-1", "sentinel-1"), ("landsat", "landsat")):
        if platform.startswith(prefix) and name in _REGISTRY:
            return _REGISTRY[name]
    raise UnknownSensorError(
        f"Item {d.get('id')!r} (collection {coll!r}) matches no registered sensor "
        f"({available()}); register a SensorSpec for its collection."
    )


def asset_for(item: pystac.Item, band: BandSpec, sensor: str = "") -> str:
    """The asset key holding ``band`` in ``item`` (see :func:`band_href` for multi-band assets).

    Raises
    ------
    MissingBandError
        Naming the band, the item and the keys it does have.
    """
    for key in band.assets:
        if key in item.assets:
            return key
    raise MissingBandError(
        f"Item {item.id!r} has no asset for band {band.name!r} (looked for {list(band.assets)}; "
        f"it has {sorted(item.assets)}). Drop the band, or register a sensor spec whose BandSpec "
        "lists this provider's asset key."
    )


def band_href(href: str, index: int) -> str:
    """The href that reads band ``index`` of a multi-band asset as a one-band raster.

    stackstac reads the first band of an asset; GDAL's ``vrt://`` connection string (GDAL >= 3.1)
    exposes any band as the only one: ``vrt:///data/rgb.tif?bands=2``.
    """
    from urllib.parse import unquote, urlparse

    parsed = urlparse(href)
    if parsed.scheme == "file":
        path = unquote(parsed.path)
    elif parsed.scheme in ("http", "https"):
        path = "/vsicurl/" + href
    elif parsed.scheme == "s3":
        path = "/vsis3/" + href[len("s3://"):]
    else:
        path = href
    return f"vrt://{path}?bands={index}"


def _raster_band(item: pystac.Item, key: str, index: int = 1) -> dict[str, Any]:
    bands = item.assets[key].extra_fields.get("raster:bands") or []
    return bands[index - 1] if len(bands) >= index else {}


def _item_time(item: pystac.Item) -> dt.datetime | None:
    t = item.datetime or item.common_metadata.start_datetime
    return t.replace(tzinfo=None) if t else None


def scale_offset(item: pystac.Item, key: str, band: BandSpec, sensor: SensorSpec) -> tuple[float, float]:
    """``(scale, offset)`` turning the asset's stored values into physical values.

    See the module docstring for the precedence rules.
    """
    rb = _raster_band(item, key, band.index)
    scale = float(rb.get("scale", band.scale))
    is_s2_reflectance = sensor.name == "sentinel-2" and sensor.mask is not None and band is not sensor.mask.band
    props = item.properties
    if is_s2_reflectance and (props.get("earthsearch:boa_offset_applied") or props.get("sentinel:boa_offset_applied")):
        return scale, 0.0
    if "offset" in rb:
        return scale, float(rb["offset"])
    offset = band.offset
    if is_s2_reflectance:
        baseline = item.properties.get("s2:processing_baseline") or item.properties.get(
            "sentinel2:processing_baseline")
        if baseline is not None:
            new = str(baseline) >= "04.00"
        else:
            t = _item_time(item)
            new = t is not None and t >= dt.datetime(2022, 1, 25)
        offset = -0.1 if new else 0.0
    return scale, offset


def nodata_of(item: pystac.Item, key: str, band: BandSpec) -> float | None:
    """The stored value that means "no data" for this asset."""
    rb = _raster_band(item, key, band.index)
    return rb.get("nodata", band.nodata)
