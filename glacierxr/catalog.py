"""STAC items for local rasters, so files on disk go through the same cube code as a STAC API.

A scene delivered as GeoTIFFs (a Landsat scene from a colleague, a Gaofen order, a DEM mosaic)
has no STAC item. :func:`item_from_files` writes the minimum stackstac and glacierxr need: the
footprint in lon/lat, ``proj:epsg`` / ``proj:transform`` / ``proj:shape`` per asset and one
``raster:bands`` entry per band. Pass the items to :func:`glacierxr.open_cube` with a sensor
spec registered for the collection (:func:`glacierxr.sensors.register`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pystac

from glacierxr.errors import CRSError, InvalidArgumentError

__all__ = ["item_from_files"]


def item_from_files(
    item_id: str,
    assets: Mapping[str, str | os.PathLike],
    *,
    datetime: str | dt.datetime,
    collection: str,
    properties: Mapping[str, Any] | None = None,
) -> pystac.Item:
    """A STAC item describing local raster files.

    Parameters
    ----------
    item_id
        The item's id.
    assets
        Asset key -> raster path; all assets must share a CRS (they may differ in resolution).
    datetime
        Acquisition time (ISO 8601 string or datetime; a naive one is taken as UTC).
    collection
        Collection id; it is how :func:`glacierxr.sensors.identify` finds the sensor spec.
    properties
        Extra item properties (e.g. ``{"eo:cloud_cover": 3.0}``).

    Returns
    -------
    pystac.Item

    Raises
    ------
    InvalidArgumentError
        When a file is missing, or no asset is given.
    CRSError
        When a file has no CRS or the files disagree on it.
    """
    import rasterio
    from rasterio.warp import transform_geom
    from shapely.geometry import box, mapping, shape

    if not assets:
        raise InvalidArgumentError("item_from_files needs at least one asset: {'key': 'path/to/file.tif'}.")
    when = dt.datetime.fromisoformat(datetime) if isinstance(datetime, str) else datetime
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    epsg, footprint, stac_assets = None, None, {}
    for key, path in assets.items():
        path = Path(path)
        if not path.is_file():
            raise InvalidArgumentError(f"asset {key!r}: {path} does not exist.")
        with rasterio.open(path) as src:
            if src.crs is None:
                raise CRSError(f"asset {key!r}: {path} has no CRS; assign one (gdal_edit.py -a_srs) first.")
            this = src.crs.to_epsg()
            if epsg is not None and this != epsg:
                raise CRSError(f"asset {key!r} is in EPSG:{this} but earlier assets are in EPSG:{epsg}; "
                               "one item holds rasters of one CRS.")
            epsg = this
            footprint = footprint or src.bounds
            stac_assets[key] = pystac.Asset(
                href=path.resolve().as_uri(), media_type=pystac.MediaType.GEOTIFF, roles=["data"],
                extra_fields={
                    "proj:epsg": this, "proj:shape": [src.height, src.width],
                    "proj:transform": list(src.transform)[:6],
                    "raster:bands": [{"data_type": dt_, **({"nodata": src.nodata} if src.nodata is not None else {})}
                                     for dt_ in src.dtypes],
                },
            )
    lonlat = shape(transform_geom(f"EPSG:{epsg}", "EPSG:4326", mapping(box(*footprint))))
    item = pystac.Item(id=item_id, geometry=mapping(lonlat), bbox=list(lonlat.bounds), datetime=when,
                       properties={"proj:epsg": epsg, **dict(properties or {})}, collection=collection)
    for key, asset in stac_assets.items():
        item.add_asset(key, asset)
    return item
