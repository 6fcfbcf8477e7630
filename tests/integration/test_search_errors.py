"""Search against the local STAC API, and every bad input of the foundation with its message."""

from __future__ import annotations

import json

import pystac
import pytest

import glacierxr as gx
from glacierxr.errors import (
    CRSError,
    EmptySearchError,
    GlacierxrError,
    GridError,
    InvalidArgumentError,
    InvalidBBoxError,
    InvalidDatetimeError,
    MissingBandError,
    StacConnectionError,
    UnknownSensorError,
    UnsupportedItemError,
)
from glacierxr.stac_server import serve


def test_search_returns_items_per_sensor(region, stac_url):
    items = gx.search(stac_url, bbox=region.bbox, datetime=region.datetime)
    assert {k: len(v) for k, v in items.items()} == {"sentinel-2": 3, "sentinel-1": 3, "dem": 1}
    assert all(isinstance(v, pystac.ItemCollection) for v in items.values())


def test_cloud_filter_is_client_side_on_rustac(region, stac_url):
    clouds = {i: json.loads(line)["properties"]["eo:cloud_cover"] for i, line in enumerate(
        (region.stac_dir / "sentinel-2-l2a" / "items.ndjson").read_text().splitlines())}
    limit = sorted(clouds.values())[1]
    items = gx.search(stac_url, bbox=region.bbox, datetime=region.datetime, sensors=("sentinel-2",), max_cloud=limit)
    got = [it.properties["eo:cloud_cover"] for it in items["sentinel-2"]]
    assert got and all(c <= limit for c in got) and len(got) == sum(c <= limit for c in clouds.values())


def test_provider_presets_resolve_collections():
    from glacierxr.search import provider_of

    assert provider_of("https://earth-search.aws.element84.com/v1") == "earth-search"
    assert provider_of("https://planetarycomputer.microsoft.com/api/stac/v1") == "planetary-computer"
    assert provider_of("http://127.0.0.1:8000") == "local"
    assert gx.sensors.get("sentinel-1").collections["planetary-computer"] == "sentinel-1-rtc"


def test_unreachable_url_says_what_to_check():
    with pytest.raises(StacConnectionError, match="Could not open the STAC API"):
        gx.search("http://127.0.0.1:9", bbox=(86.9, 27.9, 87.0, 28.0), datetime="2023-08-01/2023-09-01")


def test_empty_search_names_collection_bbox_and_dates(region, stac_url):
    with pytest.raises(EmptySearchError) as info:
        gx.search(stac_url, bbox=region.bbox, datetime="2015-01-01/2015-02-01", sensors=("sentinel-2",))
    msg = str(info.value)
    assert "sentinel-2-l2a" in msg and "2015-01-01/2015-02-01" in msg and str(round(region.bbox[0], 3))[:6] in msg


def test_empty_search_outside_the_region(stac_url):
    with pytest.raises(EmptySearchError, match="Widen the dates or the box"):
        gx.search(stac_url, bbox=(10.0, 46.0, 10.1, 46.1), datetime="2023-08-01/2023-09-30", sensors=("dem",))


@pytest.mark.parametrize(
    "bbox, match",
    [
        ((1, 2, 3), "exactly four"),
        (("a", 2, 3, 4), "not a sequence of numbers"),
        ((87.0, 27.9, 86.9, 28.0), "west .* must be smaller than east"),
        ((86.9, 28.0, 87.0, 27.9), "south .* must be smaller than north"),
        ((500000, 3000000, 510000, 3010000), "must lie in \\[-180, 180\\]"),
        ((86.9, 27.9, float("nan"), 28.0), "NaN or infinity"),
        ((10, -95, 11, 10), "latitudes"),
    ],
)
def test_invalid_bbox(bbox, match):
    with pytest.raises(InvalidBBoxError, match=match):
        gx.search("http://127.0.0.1:9", bbox=bbox, datetime="2023-08-01/2023-09-01")
    with pytest.raises(InvalidBBoxError):
        gx.plan_cube([], bbox=bbox)


@pytest.mark.parametrize(
    "datetime, match",
    [("", "is empty"), ("2023-09-30/2023-07-01", "ends .* before it starts"), ("last summer", "as a date"),
     ("../..", "open at both ends"), ("2023-01-01/2023-02-01/2023-03-01", "more than one")],
)
def test_invalid_datetime(datetime, match):
    with pytest.raises(InvalidDatetimeError, match=match):
        gx.search("http://127.0.0.1:9", bbox=(86.9, 27.9, 87.0, 28.0), datetime=datetime)


def test_unknown_sensor_lists_known_ones():
    with pytest.raises(UnknownSensorError, match="known sensors: .*sentinel-2"):
        gx.search("http://127.0.0.1:9", bbox=(86.9, 27.9, 87.0, 28.0), datetime="2023-08-01/2023-09-01", sensors=("modis",))


def test_bad_max_cloud():
    with pytest.raises(InvalidArgumentError, match="percentage"):
        gx.search("http://127.0.0.1:9", bbox=(86.9, 27.9, 87.0, 28.0), datetime="2023-08-01/2023-09-01", max_cloud=150)


def _items(region):
    lines = (region.stac_dir / "sentinel-2-l2a" / "items.ndjson").read_text().splitlines()
    return [pystac.Item.from_dict(json.loads(line)) for line in lines]


def test_items_missing_a_required_band(region):
    items = _items(region)
    del items[0].assets["swir16"]
    with pytest.raises(MissingBandError, match="no asset for band 'B11'.*swir16"):
        gx.open_cube(items, bbox=region.bbox)


def test_sentinel1_grd_in_radar_geometry_is_refused(region):
    item = _items(region)[0]
    item.collection_id = "sentinel-1-grd"
    item.assets = {"vv": item.assets["blue"], "vh": item.assets["green"]}
    with pytest.raises(UnsupportedItemError, match="radar geometry.*sentinel-1-rtc"):
        gx.open_cube([item], bbox=region.bbox)


def test_crs_that_cannot_be_determined(region):
    with pytest.raises(CRSError, match="Cannot interpret"):
        gx.plan_cube(_items(region), bbox=region.bbox, crs="EPSG:99999999")
    with pytest.raises(CRSError, match="no EPSG code"):
        gx.plan_cube(_items(region), bbox=region.bbox, crs="+proj=tmerc +lat_0=0 +lon_0=86.9 +k=1 +x_0=0 +y_0=0 +ellps=WGS84")


def test_bad_grid_arguments(region):
    items = _items(region)
    with pytest.raises(GridError, match="resolution"):
        gx.open_cube(items, bbox=region.bbox, resolution=-10)
    with pytest.raises(GridError, match="chunks"):
        gx.open_cube(items, bbox=region.bbox, chunks=0)
    with pytest.raises(GridError, match="composite"):
        gx.open_cube(items, bbox=region.bbox, composite="max")
    with pytest.raises(GridError, match="degrees"):
        gx.plan_cube(items, bbox=region.bbox, crs="EPSG:4326", resolution=10)


def test_unknown_item_and_no_items(region):
    item = _items(region)[0]
    item.collection_id = "my-drone-flights"
    item.properties["platform"] = "dji"
    with pytest.raises(UnknownSensorError, match="register a SensorSpec"):
        gx.plan_cube([item], bbox=region.bbox)
    with pytest.raises(MissingBandError, match="No STAC items"):
        gx.plan_cube([], bbox=region.bbox)


def test_every_error_is_a_glacierxr_error_and_a_builtin():
    assert issubclass(InvalidBBoxError, ValueError) and issubclass(InvalidBBoxError, GlacierxrError)
    assert issubclass(StacConnectionError, ConnectionError)
    assert issubclass(EmptySearchError, LookupError)


def test_two_servers_run_side_by_side(region):
    with serve(region.stac_dir) as a, serve(region.stac_dir) as b:
        assert a != b
        assert len(gx.search(a, bbox=region.bbox, datetime=region.datetime, sensors=("dem",))["dem"]) == 1
        assert len(gx.search(b, bbox=region.bbox, datetime=region.datetime, sensors=("dem",))["dem"]) == 1
    with pytest.raises(StacConnectionError):
        gx.search(a, bbox=region.bbox, datetime=region.datetime, sensors=("dem",))
