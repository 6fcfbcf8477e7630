"""STAC search: one search per sensor, provider presets, cloud filtering, clear errors."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

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
    StacConnectionError,
)
from glacierxr.geo import validate_bbox

__all__ = ["search", "provider_of", "validate_datetime", "late_summer"]

log = logging.getLogger(__name__)
DEFAULT_SENSORS = ("sentinel-2", "sentinel-1", "dem")


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
    bbox: Sequence[float],
    datetime: str,
    sensors: Sequence[str | _sensors.SensorSpec] = DEFAULT_SENSORS,
    max_cloud: float | None = None,
    provider: str | None = None,
    max_items: int | None = 500,
) -> dict[str, pystac.ItemCollection]:
    """Search a STAC API once per sensor.

    Parameters
    ----------
    url
        STAC API root URL, or a provider preset name (``"earth-search"``, ``"planetary-computer"``).
    bbox
        ``(west, south, east, north)`` in degrees.
    datetime
        ``"START/END"`` window; see :func:`late_summer` for the usual glacier-mapping season.
    sensors
        Sensor names (see :func:`glacierxr.sensors.available`) or specs.
    max_cloud
        Maximum scene cloud cover in percent for optical sensors. Filtered on the server when
        its conformance allows (CQL2 filter or query extension), and always client-side too.
    provider
        Preset that decides collection ids; guessed from ``url`` by default. For an unknown
        endpoint the first known collection the server offers is used.
    max_items
        Upper bound on items per sensor.

    Returns
    -------
    dict[str, pystac.ItemCollection]
        Items per sensor name. Planetary Computer hrefs are signed when the optional
        ``planetary-computer`` package is installed.

    Raises
    ------
    InvalidBBoxError, InvalidDatetimeError, UnknownSensorError
        On invalid arguments.
    StacConnectionError
        When the API cannot be reached.
    EmptySearchError
        When a sensor's search returns nothing; the message names collection, bbox and dates.
    """
    box = validate_bbox(bbox)
    validate_datetime(datetime)
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
        kwargs: dict = dict(collections=[collection], bbox=box, datetime=when, max_items=max_items)
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
        if cloudy:
            items = [it for it in items if float(it.properties.get(spec.cloud_property, 0.0)) <= float(max_cloud)]
        if not items:
            cloud = f" with cloud cover <= {max_cloud} %" if cloudy else ""
            raise EmptySearchError(
                f"No {spec.name} item found in collection {collection!r} at {url} for bbox={list(box)} and "
                f"datetime={when!r}{cloud}. Widen the dates or the box, raise max_cloud, or leave "
                f"{spec.name!r} out of sensors=."
            )
        if provider == "planetary-computer":
            items = _sign(items)
        results[spec.name] = pystac.ItemCollection(items)
        log.info("%s: %d items from %s", spec.name, len(items), collection)
    return results


def _sign(items: list[pystac.Item]) -> list[pystac.Item]:
    try:
        import planetary_computer
    except ImportError:
        raise OptionalDependencyError(
            "Planetary Computer asset hrefs must be signed; install the signer with "
            "`pip install 'glacierxr[planetary-computer]'`."
        ) from None
    return [planetary_computer.sign(it) for it in items]
