"""STAC items -> one lazy, one-grid datacube (``xarray.Dataset``) with stackstac.

Every sensor is stacked with :func:`stackstac.stack` onto the same :class:`~glacierxr.geo.Grid`
(exact bounds, pixel-centre coordinates), then turned into physical values and composited:

* Sentinel-2 / Landsat (optical): stored values -> reflectance with each item's own
  scale/offset, nodata -> NaN, cloud / shadow / defective pixels masked with the scene
  classification (snow and ice kept), same-day tiles mosaicked, median over the dates.
* Sentinel-1 RTC (SAR): linear gamma0, nodata -> NaN, median over the dates.
* DEM: bilinear onto the grid, tiles mosaicked.
* Indices: NDVI, NDSI, NDWI from the composite.

Everything between the read and the composite is one task per chunk and sensor
(:func:`glacierxr.composite.composite_chunk`, one NumPy pass over the chunk's stored values).

Nothing is read until the result is computed. The stackstac traps this module works around:
it ignores projection v2 ``proj:code`` (we set ``proj:epsg`` on item copies),
its own grid can come out larger than asked (we pass exact ``bounds`` and check the shape), it
refuses ``rescale`` with float32 (we apply scale/offset per item ourselves) and same-day tiles
share a timestamp (we mosaic per day before the median).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pystac
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from glacierxr import sensors as _sensors
from glacierxr.composite import ChunkSpec, composite_chunk
from glacierxr.errors import GridError, MissingBandError, UnsupportedItemError
from glacierxr.geo import Grid, grid_from_bbox
from glacierxr.indices import add_indices
from glacierxr.reader import AlignedReader, ReadEnv, RetryPolicy

__all__ = ["AssetPlan", "SensorPlan", "CubePlan", "plan_cube", "open_cube", "gdal_env", "RetryPolicy"]

#: Composites over the dates of an optical or SAR sensor (:func:`glacierxr.composite.composite_chunk`).
COMPOSITES = ("median", "mean")

#: The stackstac reader class used for every asset (see :mod:`glacierxr.reader`).
READER = AlignedReader

#: File extensions GDAL's ``/vsicurl/`` may open (compared case-insensitively, query strings
#: ignored; ``{noext}``: names without one), so that it never probes sidecar files such as
#: ``.aux.xml`` or ``.ovr`` over the network. Add an extension here to read other formats.
REMOTE_EXTENSIONS = (".tif", ".tiff", ".jp2", "{noext}")


def _gdal_at_least(major: int, minor: int) -> bool:
    import rasterio

    parts = rasterio.__gdal_version__.split(".")
    return (int(parts[0]), int(parts[1])) >= (major, minor)


def gdal_env(retry: RetryPolicy | None = None) -> ReadEnv:
    """The GDAL environment every asset is opened and read in (stackstac's ``gdal_env``).

    stackstac's defaults (``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``, ``VSI_CACHE`` on for
    opening and off for reading, merged range requests) plus GDAL's HTTP retries and timeouts
    from ``retry``: ``GDAL_HTTP_MAX_RETRY`` / ``GDAL_HTTP_RETRY_DELAY`` (GDAL retries a request
    answered 429, 500, 502, 503, 504, or cut off), ``GDAL_HTTP_RETRY_CODES`` (GDAL >= 3.10),
    ``GDAL_HTTP_TIMEOUT`` / ``GDAL_HTTP_CONNECTTIMEOUT``, and
    ``CPL_VSIL_CURL_ALLOWED_EXTENSIONS`` (:data:`REMOTE_EXTENSIONS`). The policy also sets how
    often :class:`~glacierxr.reader.AlignedReader` retries a whole open/read.

    Parameters
    ----------
    retry
        The retry policy; :class:`RetryPolicy()` (4 attempts, GDAL retrying each request 3
        times, 30 s timeout) by default.

    Returns
    -------
    ReadEnv
        A :class:`stackstac.rio_env.LayeredEnv` that also carries ``retry``.
    """
    import stackstac

    policy = retry or RetryPolicy()
    always = {
        "GDAL_HTTP_MAX_RETRY": str(policy.http_max_retry),
        "GDAL_HTTP_RETRY_DELAY": repr(float(policy.http_retry_delay)),
        "GDAL_HTTP_TIMEOUT": str(max(1, round(policy.http_timeout))),
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, round(policy.http_connect_timeout))),
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ",".join(REMOTE_EXTENSIONS),
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    }
    if _gdal_at_least(3, 10):
        always["GDAL_HTTP_RETRY_CODES"] = "408,429,500,502,503,504"
    base = stackstac.DEFAULT_GDAL_ENV.updated(always=always)
    return ReadEnv(*base.__getstate__(), retry=policy)


@dataclass(frozen=True)
class AssetPlan:
    """Where one band of one item comes from and how its stored values become physical values."""

    item_id: str
    band: str
    asset_key: str
    href: str
    scale: float
    offset: float
    nodata: float | None


@dataclass(frozen=True)
class SensorPlan:
    """The items of one sensor, normalised for stacking, and their per-band assets."""

    sensor: _sensors.SensorSpec
    items: tuple[pystac.Item, ...]
    """Copies of the input items whose asset keys are the cube's band names."""
    assets: tuple[AssetPlan, ...]

    @property
    def bands(self) -> tuple[str, ...]:
        """Bands stacked for this sensor (data bands, then the mask band if any)."""
        extra = (self.sensor.mask.band.name,) if self.sensor.mask else ()
        return self.sensor.band_names + extra

    def asset(self, item_id: str, band: str) -> AssetPlan:
        """The plan of one band of one item."""
        for a in self.assets:
            if a.item_id == item_id and a.band == band:
                return a
        raise KeyError((item_id, band))


@dataclass(frozen=True)
class CubePlan:
    """The output grid and, per sensor, what will be read: no pixel I/O needed to make it."""

    grid: Grid
    sensors: dict[str, SensorPlan]


def _group(items: Mapping[str, Iterable[pystac.Item]] | Iterable[pystac.Item]) -> dict[str, list[pystac.Item]]:
    groups: dict[str, list[pystac.Item]] = {}
    flat = (it for group in items.values() for it in group) if isinstance(items, Mapping) else items
    for it in flat:
        if isinstance(it, dict):
            it = pystac.Item.from_dict(it)
        groups.setdefault(_sensors.identify(it).name, []).append(it)
    return groups


def _epsg_from(d: Mapping) -> int | None:
    if d.get("proj:epsg") is not None:
        return int(d["proj:epsg"])
    code = d.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":")[1])
    return None


def _normalise(item: pystac.Item, spec: _sensors.SensorSpec) -> tuple[pystac.Item, list[AssetPlan]]:
    """A copy of ``item`` whose assets are keyed by band name, with ``proj:epsg`` set for stackstac."""
    if item.collection_id in spec.unsupported:
        raise UnsupportedItemError(f"Item {item.id!r}: {spec.unsupported[item.collection_id]}")
    bands = spec.bands + ((spec.mask.band,) if spec.mask else ())
    new = item.clone()
    new.assets = {}
    plans = []
    item_epsg = _epsg_from(item.properties)
    for band in bands:
        key = _sensors.asset_for(item, band, spec.name)
        asset = item.assets[key].clone()
        layers = asset.extra_fields.get("raster:bands") or []
        if band.index > 1 or len(layers) > 1:  # one band of a multi-band asset: read it as a 1-band VRT
            asset.href = _sensors.band_href(asset.href, band.index)
            asset.extra_fields["raster:bands"] = layers[band.index - 1:band.index]
        epsg = _epsg_from(asset.extra_fields) or item_epsg
        if epsg is not None:
            asset.extra_fields["proj:epsg"] = epsg
        new.add_asset(band.name, asset)
        scale, offset = _sensors.scale_offset(item, key, band, spec)
        plans.append(AssetPlan(item.id, band.name, key, asset.href, scale, offset, _sensors.nodata_of(item, key, band)))
    if item_epsg is not None:
        new.properties["proj:epsg"] = item_epsg
    return new, plans


def plan_cube(
    items: Mapping[str, Iterable[pystac.Item]] | Iterable[pystac.Item],
    *,
    bbox: Sequence[float] | None = None,
    resolution: float = 10.0,
    crs: object = None,
    grid: Grid | None = None,
) -> CubePlan:
    """Decide the grid and the assets of every sensor, without reading a pixel.

    Parameters
    ----------
    items
        The result of :func:`glacierxr.search` (items per sensor) or any iterable of items;
        each item's sensor is recognised from its collection.
    bbox
        ``(west, south, east, north)`` in degrees.
    resolution
        Pixel size in metres.
    crs
        Output CRS; the UTM zone of the bbox centre by default.
    grid
        An exact output grid instead of ``bbox``/``resolution``/``crs`` (e.g. a production
        tile's, :attr:`glacierxr.tiles.Tile.grid`).

    Returns
    -------
    CubePlan

    Raises
    ------
    InvalidBBoxError, GridError, CRSError
        On a bad bbox, resolution or CRS.
    UnknownSensorError, UnsupportedItemError, MissingBandError
        On items no sensor recognises, items that cannot be placed on a map grid, or items
        lacking a required band.
    """
    grid = _the_grid(bbox, resolution, crs, grid)
    groups = _group(items)
    if not groups:
        raise MissingBandError("No STAC items were given; search first, e.g. gx.search(url, bbox=..., datetime=...).")
    plans = {}
    for name, group in groups.items():
        spec = _sensors.get(name)
        normalised, assets = [], []
        for it in group:
            n, a = _normalise(it, spec)
            normalised.append(n)
            assets.extend(a)
        plans[name] = SensorPlan(spec, tuple(normalised), tuple(assets))
    return CubePlan(grid, plans)


def _the_grid(bbox, resolution, crs, grid: Grid | None) -> Grid:
    if grid is not None:
        if bbox is not None:
            raise GridError("Pass either bbox= (with resolution= and crs=) or grid=, not both.")
        return grid
    if bbox is None:
        raise GridError("Pass bbox=(west, south, east, north) in degrees, or an exact grid=.")
    return grid_from_bbox(bbox, resolution=resolution, crs=crs)


# ----------------------------------------------------------------------------- stacking


def _stack(plan: SensorPlan, grid: Grid, chunks: int, env: ReadEnv, reader: type | None = None) -> xr.DataArray:
    import stackstac
    from rasterio.enums import Resampling

    resampling = Resampling[plan.sensor.bands[0].resampling]
    labels: dict[str, str] = {}
    for a in plan.assets:
        name = f"band {a.band!r} of item {a.item_id!r}"
        labels[a.href] = f"{labels[a.href]}, {name}" if a.href in labels else name
    arr = stackstac.stack(
        [it.to_dict() for it in plan.items],
        assets=list(plan.bands),
        epsg=grid.epsg,
        resolution=grid.resolution,
        bounds=grid.bounds,
        snap_bounds=False,
        resampling=resampling,
        chunksize=chunks,
        dtype=np.dtype("float32"),
        fill_value=np.float32(np.nan),
        rescale=False,
        xy_coords="center",
        properties=False,
        band_coords=False,
        sortby_date="asc",
        errors_as_nodata=(),  # never turn a failed read into fill values: AlignedReader retries, then raises
        reader=reader or READER,
        gdal_env=env.with_labels(labels),
    )
    if arr.shape[-2:] != grid.shape:
        raise GridError(
            f"stackstac made a {arr.shape[-2:]} grid where {grid.shape} was asked; please report this "
            "with the bbox and resolution used."
        )
    arr = arr.assign_coords(x=grid.x, y=grid.y)
    # "id" says which items stackstac kept (it drops those that miss the grid); _physical needs it
    return arr.drop_vars([c for c in arr.coords if c not in ("time", "band", "x", "y", "id")])


def _chunk_spec(arr: xr.DataArray, plan: SensorPlan, method: str) -> ChunkSpec:
    """Per date and band: scale, offset, nodata; the day of each date; the mask's settings."""
    ids = [it.id for it in plan.items]  # stackstac keeps the input order when sorting ties
    shape = (arr.sizes["time"], arr.sizes["band"])
    scale, offset, nodata = np.ones(shape, "float32"), np.zeros(shape, "float32"), np.full(shape, np.nan, "float32")
    item_ids = list(arr.coords["id"].values) if "id" in arr.coords else ids
    bands = [str(b) for b in arr.band.values]
    for t, iid in enumerate(item_ids):
        for b, band in enumerate(bands):
            a = plan.asset(str(iid), band)
            scale[t, b], offset[t, b] = a.scale, a.offset
            if a.nodata is not None and np.isfinite(a.nodata):
                nodata[t, b] = a.nodata
    days = arr.time.values.astype("datetime64[D]").astype(np.int64)
    spec = plan.sensor
    mask = spec.mask
    return ChunkSpec(
        scale=scale, offset=offset, nodata=nodata, days=tuple(int(d) for d in days),
        data_bands=tuple(bands.index(b) for b in spec.band_names),
        mask_band=bands.index(mask.band.name) if mask else None,
        mask_values=tuple(float(v) for v in mask.values) if mask and mask.kind != "bits" else (),
        mask_bits=tuple(int(b) for b in mask.bits) if mask and mask.kind == "bits" else (),
        method="first" if spec.kind == "dem" else method,
    )


def _sensor_variables(plan: SensorPlan, grid: Grid, chunks: int, composite: str, env: ReadEnv,
                      reader: type | None = None) -> dict[str, xr.DataArray]:
    """Stack one sensor and composite it chunk by chunk (:func:`glacierxr.composite.composite_chunk`)."""
    import dask.array as da

    arr = _stack(plan, grid, chunks, env, reader)
    spec = _chunk_spec(arr, plan, composite)
    names = plan.sensor.band_names
    # t and b are contracted: each output chunk gets all (date, band) blocks of its spatial chunk
    data = da.blockwise(composite_chunk, "kyx", arr.data, "tbyx", concatenate=False,
                        new_axes={"k": len(names)}, dtype=np.float32, spec=spec)
    out = xr.DataArray(data, dims=("band", "y", "x"), coords={"band": list(names), "y": arr.y, "x": arr.x})
    return {str(b): out.sel(band=b, drop=True) for b in names}


def open_cube(
    items: Mapping[str, Iterable[pystac.Item]] | Iterable[pystac.Item],
    *,
    bbox: Sequence[float] | None = None,
    resolution: float = 10.0,
    crs: object = None,
    chunks: int = 2048,
    composite: str = "median",
    indices: bool = True,
    retry: RetryPolicy | None = None,
    grid: Grid | None = None,
    reader: type | None = None,
) -> xr.Dataset:
    """Stack STAC items lazily onto one grid and composite them into a glacier-mapping datacube.

    Parameters
    ----------
    items
        Items per sensor from :func:`glacierxr.search`, or any iterable of items.
    bbox
        ``(west, south, east, north)`` in degrees; the grid covers it, snapped outward to
        whole pixels.
    resolution
        Pixel size in metres (10 for Sentinel-2).
    crs
        Output CRS; by default the UTM zone of the bbox centre.
    chunks
        Spatial chunk size in pixels (square chunks).
    composite
        ``"median"`` (default) or ``"mean"`` over the dates of each optical/SAR sensor. Choose
        the season through the search window (see :func:`glacierxr.search.late_summer`).
    indices
        Add NDVI, NDSI and NDWI when their bands are present.
    retry
        How reads retry transient failures (HTTP 5xx, reset connections, timeouts): GDAL's
        per-request retries and glacierxr's per-chunk attempts with backoff. The default
        :class:`RetryPolicy` suits cloud object stores; see :func:`gdal_env`.
    grid
        An exact output grid instead of ``bbox``/``resolution``/``crs`` (a production tile's).
    reader
        The stackstac ``Reader`` class (:class:`~glacierxr.reader.AlignedReader` by default); a
        dry run passes one that generates pixels (:mod:`glacierxr.testing.generated`).

    Returns
    -------
    xarray.Dataset
        Dask-backed float32 variables (``y``, ``x``) on one grid: ``B02 B03 B04 B08 B11`` from
        Sentinel-2 (or another optical sensor), ``VV VH`` from Sentinel-1, ``elevation`` and
        ``NDVI NDSI NDWI``, with the CRS written (rioxarray, ``spatial_ref``) and the source
        item ids in ``attrs["source_items"]``. Nothing is read until computed.

    Raises
    ------
    InvalidBBoxError, GridError, CRSError, UnknownSensorError, UnsupportedItemError, MissingBandError
        See :func:`plan_cube`.

    Notes
    -----
    When the result is computed, an asset that cannot be read (permanently, or after every
    retry) raises :class:`~glacierxr.errors.AssetReadError` naming it; a failed read never
    becomes NaN pixels.
    """
    if composite not in COMPOSITES:
        raise GridError(f"composite={composite!r} is not supported; use one of {list(COMPOSITES)}.")
    if not (isinstance(chunks, int | np.integer) and chunks > 0):
        raise GridError(f"chunks={chunks!r} must be a positive number of pixels, e.g. 2048.")
    plan = plan_cube(items, bbox=bbox, resolution=resolution, crs=crs, grid=grid)
    grid = plan.grid
    env = gdal_env(retry)
    data_vars: dict[str, xr.DataArray] = {}
    for sensor_plan in plan.sensors.values():
        data_vars.update(_sensor_variables(sensor_plan, grid, int(chunks), composite, env, reader))
    ds = xr.Dataset(data_vars)
    if indices:
        ds = add_indices(ds)
    ds = ds.rio.write_crs(grid.crs.to_wkt()).rio.write_coordinate_system()
    ds.attrs.update(
        source_items={name: [it.id for it in p.items] for name, p in plan.sensors.items()},
        resolution=grid.resolution,
        crs=f"EPSG:{grid.epsg}",
        composite=composite,
    )
    for name in ds.data_vars:
        ds[name].attrs.update(_VARIABLE_ATTRS.get(str(name), {}))
    return ds


_VARIABLE_ATTRS = {
    **{b: {"long_name": f"Sentinel-2 {b} surface reflectance", "units": "1"} for b in ("B02", "B03", "B04", "B08", "B11")},
    "VV": {"long_name": "Sentinel-1 VV gamma0 (linear, terrain corrected)", "units": "1"},
    "VH": {"long_name": "Sentinel-1 VH gamma0 (linear, terrain corrected)", "units": "1"},
    "elevation": {"long_name": "surface elevation", "units": "m"},
}

