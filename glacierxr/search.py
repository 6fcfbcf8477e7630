"""STAC search: one search per sensor, provider presets, cloud filtering, clear errors."""

from __future__ import annotations

import datetime as dt
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pystac
import pystac_client
import requests
from pystac_client.exceptions import APIError

from glacierxr import sensors as _sensors
from glacierxr.errors import (
    EmptySearchError,
    InvalidArgumentError,
    InvalidDatetimeError,
    OptionalDependencyError,
    SearchLimitWarning,
    StacConnectionError,
)
from glacierxr.geo import validate_bbox

__all__ = ["search", "provider_of", "validate_datetime", "validate_intersects", "late_summer", "PAGE_SIZE"]

log = logging.getLogger(__name__)
DEFAULT_SENSORS = ("sentinel-2", "sentinel-1", "dem")
#: Items asked per page. Servers cap it themselves (Earth Search and rustac at their own maximum),
#: so a large value only keeps the number of round trips low on a full, paged search.
PAGE_SIZE = 1000
_GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection")


def _positions(geometry: Mapping[str, Any]) -> list[tuple[float, float]]:
    """Every ``(lon, lat)`` position of a GeoJSON geometry (any type, nested collections too)."""
    if geometry.get("type") == "GeometryCollection":
        return [p for g in geometry.get("geometries", []) for p in _positions(g)]
    out: list[tuple[float, float]] = []

    def walk(c: Any) -> None:
        if isinstance(c, (list, tuple)) and c and isinstance(c[0], (int, float)):
            out.append((float(c[0]), float(c[1])))
        elif isinstance(c, (list, tuple)):
            for sub in c:
                walk(sub)

    walk(geometry.get("coordinates"))
    return out


def validate_intersects(intersects: Any) -> tuple[dict, tuple[float, float, float, float]]:
    """Check a GeoJSON geometry given as ``intersects=`` and return it with its lon/lat bbox.

    Parameters
    ----------
    intersects
        A GeoJSON geometry dict (``{"type": "Polygon", "coordinates": ...}``), a GeoJSON Feature
        (its geometry is used) or any object with ``__geo_interface__`` (e.g. a shapely geometry).

    Returns
    -------
    tuple[dict, tuple[float, float, float, float]]
        The geometry as a plain dict and its ``(west, south, east, north)``.

    Raises
    ------
    InvalidArgumentError
        When it is not a GeoJSON geometry with finite lon/lat positions.
    """
    geom = getattr(intersects, "__geo_interface__", intersects)
    if isinstance(geom, Mapping) and geom.get("type") == "Feature":
        geom = geom.get("geometry")
    if not isinstance(geom, Mapping) or geom.get("type") not in _GEOMETRY_TYPES:
        raise InvalidArgumentError(
            f"intersects={intersects!r:.120} is not a GeoJSON geometry; pass a dict such as "
            "{'type': 'Polygon', 'coordinates': [[[lon, lat], ...]]} in EPSG:4326, or use bbox=."
        )
    try:
        pts = _positions(geom)
    except (TypeError, ValueError, IndexError):
        pts = []
    if not pts or not all(math.isfinite(x) and math.isfinite(y) for x, y in pts):
        raise InvalidArgumentError(
            f"intersects is a {geom.get('type')} without finite (lon, lat) positions; check its coordinates."
        )
    if not all(-180 <= x <= 180 and -90 <= y <= 90 for x, y in pts):
        raise InvalidArgumentError(
            "intersects has positions outside lon [-180, 180] / lat [-90, 90]; GeoJSON is (lon, lat) "
            "in EPSG:4326 — reproject it, or check the axis order."
        )
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return dict(geom), (min(xs), min(ys), max(xs), max(ys))


def validate_datetime(datetime: str) -> tuple[dt.date | None, dt.date | None]:
    """Parse ``"A/B"`` (dates or RFC 3339 times, ``..`` for an open end) or a single date.

    Raises
    ------
    InvalidDatetimeError
        When the string is empty, unparsable or inverted.
    """
    if not isinstance(datetime, str) or not datetime.strip():
        raise InvalidDatetimeError(
            f"datetime={datetime!r} is empty; pass a window such as '2023-07-15/2023-09-30'."
        )
    parts = datetime.strip().split("/")
    if len(parts) > 2:
        raise InvalidDatetimeError(f"datetime={datetime!r} has more than one '/'; pass 'START/END'.")

    def parse(s: str) -> dt.date | None:
        if s in ("", ".."):
            return None
        try:
            return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).date() if "T" in s else dt.date.fromisoformat(s)
        except ValueError:
            raise InvalidDatetimeError(
                f"Cannot read {s!r} in datetime={datetime!r} as a date; use ISO dates like 2023-07-15."
            ) from None

    start = parse(parts[0])
    end = parse(parts[-1]) if len(parts) == 2 else start
    if start is None and end is None:
        raise InvalidDatetimeError(f"datetime={datetime!r} is open at both ends; give at least one date.")
    if start and end and start > end:
        raise InvalidDatetimeError(
            f"datetime={datetime!r} ends ({end}) before it starts ({start}); swap the dates."
        )
    return start, end


def late_summer(year: int, lat: float) -> str:
    """The late-summer window used for glacier mapping: minimal seasonal snow.

    Mid-July to end of September in the northern hemisphere, mid-January to end of March in
    the southern.
    """
    return f"{year}-07-15/{year}-09-30" if lat >= 0 else f"{year}-01-15/{year}-03-31"


def provider_of(url: str) -> str:
    """Provider preset name for a STAC API URL: ``earth-search``, ``planetary-computer`` or ``local``."""
    u = url.lower()
    if "earth-search" in u:
        return "earth-search"
    if "planetarycomputer" in u:
        return "planetary-computer"
    return "local"


def _open(url: str) -> pystac_client.Client:
    target = _sensors.PROVIDERS.get(url, url)
    try:
        return pystac_client.Client.open(target, timeout=30)
    except (requests.exceptions.RequestException, APIError, pystac.STACError, ValueError, OSError) as exc:
        raise StacConnectionError(
            f"Could not open the STAC API at {target!r}: {type(exc).__name__}: {exc}. Check the URL and "
            "your network, or serve a local folder with `glacierxr stac serve DIR`."
        ) from None


def _collection_for(client: pystac_client.Client, spec: _sensors.SensorSpec, provider: str) -> str:
    """The collection id to search for ``spec`` at this endpoint."""
    if provider in spec.collections:
        return spec.collections[provider]
    try:
        offered = {c.id for c in client.get_collections()}
    except (APIError, requests.exceptions.RequestException):
        offered = set()
    for cid in spec.collections.values():
        if cid in offered:
            return cid
    if offered and (bad := spec.unsupported.keys() & offered):
        cid = sorted(bad)[0]
        raise _sensors.UnknownSensorError(f"{spec.name}: {spec.unsupported[cid]}")
    return spec.collections.get("local", next(iter(spec.collections.values())))


def _supports_query(client: pystac_client.Client) -> str | None:
    if client.conforms_to("FILTER"):
        return "filter"
    if client.conforms_to("QUERY"):
        return "query"
    return None


def search(
    url: str,
    *,
    bbox: Sequence[float] | None = None,
    datetime: str,
    intersects: Mapping[str, Any] | None = None,
    sensors: Sequence[str | _sensors.SensorSpec] = DEFAULT_SENSORS,
    max_cloud: float | None = None,
    provider: str | None = None,
    max_items: int | None = None,
    limit: int = PAGE_SIZE,
) -> dict[str, pystac.ItemCollection]:
    """Search a STAC API once per sensor.

    Parameters
    ----------
    url
        STAC API root URL, or a provider preset name (``"earth-search"``, ``"planetary-computer"``).
    bbox
        ``(west, south, east, north)`` in degrees. One of ``bbox`` and ``intersects`` is required.
    datetime
        ``"START/END"`` window; see :func:`late_summer` for the usual glacier-mapping season.
    intersects
        An AOI polygon instead of ``bbox``: a GeoJSON geometry dict in EPSG:4326 (or a Feature, or
        anything with ``__geo_interface__``). Items whose footprint intersects it are returned.
    sensors
        Sensor names (see :func:`glacierxr.sensors.available`) or specs.
    max_cloud
        Maximum scene cloud cover in percent for optical sensors. Filtered on the server when
        its conformance allows (CQL2 filter or query extension), and always client-side too.
    provider
        Preset that decides collection ids; guessed from ``url`` by default. For an unknown
        endpoint the first known collection the server offers is used.
    max_items
        Upper bound on items per sensor. ``None`` (the default) pages to the end of the result.
        When a bound is set and the search reaches it while more items match, a
        :class:`~glacierxr.errors.SearchLimitWarning` is issued (and logged) naming the sensor
        and the limit: the result is then incomplete.
    limit
        Items asked per page (the server may cap it lower); larger pages mean fewer round trips.

    Returns
    -------
    dict[str, pystac.ItemCollection]
        Items per sensor name. Planetary Computer hrefs are signed when the optional
        ``planetary-computer`` package is installed.

    Warns
    -----
    SearchLimitWarning
        When ``max_items`` cut a sensor's result short.

    Raises
    ------
    InvalidBBoxError, InvalidDatetimeError, UnknownSensorError, InvalidArgumentError
        On invalid arguments (also: neither or both of ``bbox``/``intersects``, a bad
        ``max_items`` or ``limit``).
    StacConnectionError
        When the API cannot be reached.
    EmptySearchError
        When a sensor's search returns nothing; the message names collection, bbox and dates.
    """
    if (bbox is None) == (intersects is None):
        raise InvalidArgumentError(
            "Pass exactly one of bbox=(west, south, east, north) or intersects=<GeoJSON geometry> "
            f"(got {'neither' if bbox is None else 'both'})."
        )
    if intersects is not None:
        geometry, box = validate_intersects(intersects)
        where: dict = {"intersects": geometry}
        place = f"intersects=<{geometry['type']} within {[round(v, 6) for v in box]}>"
    else:
        box = validate_bbox(bbox)
        where = {"bbox": box}
        place = f"bbox={list(box)}"
    validate_datetime(datetime)
    if max_items is not None and (isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1):
        raise InvalidArgumentError(f"max_items={max_items!r} must be a positive integer, or None to page to the end.")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidArgumentError(f"limit={limit!r} (items per page) must be a positive integer, e.g. 1000.")
    specs = [_sensors.get(s) for s in sensors]
    if max_cloud is not None and not (0 <= float(max_cloud) <= 100):
        raise InvalidArgumentError(f"max_cloud={max_cloud} must be a percentage in [0, 100], e.g. 20.")
    client = _open(url)
    provider = provider or provider_of(_sensors.PROVIDERS.get(url, url))
    mode = _supports_query(client)
    results: dict[str, pystac.ItemCollection] = {}
    for spec in specs:
        collection = _collection_for(client, spec, provider)
        # DEMs are static products stamped with their production date: search them by place only
        when = None if spec.kind == "dem" else datetime
        # one more than asked, so that reaching the limit can be told apart from an exact fit
        ask = None if max_items is None else max_items + 1
        kwargs: dict = dict(collections=[collection], datetime=when, max_items=ask, limit=min(limit, ask or limit), **where)
        cloudy = max_cloud is not None and spec.cloud_property is not None
        if cloudy and mode == "filter":
            kwargs["filter"] = {"op": "<=", "args": [{"property": spec.cloud_property}, float(max_cloud)]}
            kwargs["filter_lang"] = "cql2-json"
        elif cloudy and mode == "query":
            kwargs["query"] = {spec.cloud_property: {"lte": float(max_cloud)}}
        try:
            items = list(client.search(**kwargs).items())
        except (APIError, requests.exceptions.RequestException) as exc:
            raise StacConnectionError(
                f"The search of collection {collection!r} at {url!r} failed: {exc}. Check the URL, or retry."
            ) from None
        if max_items is not None and len(items) > max_items:
            items = items[:max_items]
            msg = (
                f"{spec.name}: the search of collection {collection!r} stopped at max_items={max_items} "
                f"while more items match {place} and datetime={when!r}; the result is incomplete. Pass "
                "max_items=None (the default) to page to the end, or a larger max_items."
            )
            log.warning(msg)
            warnings.warn(msg, SearchLimitWarning, stacklevel=2)
        if cloudy:
            items = [it for it in items if float(it.properties.get(spec.cloud_property, 0.0)) <= float(max_cloud)]
        if not items:
            cloud = f" with cloud cover <= {max_cloud} %" if cloudy else ""
            raise EmptySearchError(
                f"No {spec.name} item found in collection {collection!r} at {url} for {place} and "
                f"datetime={when!r}{cloud}. Widen the dates or the box, raise max_cloud, or leave "
                f"{spec.name!r} out of sensors=.{_swapped_hint(box)}"
            )
        if provider == "planetary-computer":
            items = _sign(items)
        results[spec.name] = pystac.ItemCollection(items)
        log.info("%s: %d items from %s", spec.name, len(items), collection)
    return results


def _swapped_hint(box: Sequence[float]) -> str:
    """A hint when the box reads as valid with longitude and latitude swapped (a common slip)."""
    w, s, e, n = box
    if max(abs(w), abs(e)) <= 90:  # the swapped box is a valid box too
        return (f" bbox is (west, south, east, north), longitude first; if yours is in (lat, lon) order, "
                f"pass ({s:g}, {w:g}, {n:g}, {e:g}).")
    return ""


def _sign(items: list[pystac.Item]) -> list[pystac.Item]:
    try:
        import planetary_computer
    except ImportError:
        raise OptionalDependencyError(
            "Planetary Computer asset hrefs must be signed; install the signer with "
            "`pip install 'glacierxr[planetary-computer]'`."
        ) from None
    return [planetary_computer.sign(it) for it in items]
