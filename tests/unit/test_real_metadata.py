"""Every real STAC item in ../shared/data/real/stac is recognised and planned correctly, offline."""

from __future__ import annotations

import ast
import json

import pystac
import pytest

import glacierxr as gx
from glacierxr import sensors
from glacierxr.errors import MissingBandError, UnsupportedItemError

pytestmark = pytest.mark.real


def _features(body):
    if isinstance(body, str):
        body = ast.literal_eval(body)
    if isinstance(body, dict) and body.get("type") == "FeatureCollection":
        return body["features"]
    if isinstance(body, dict) and body.get("type") == "Feature":
        return [body]
    return []


@pytest.fixture(scope="module")
def real_items(real_data):
    found = []
    for path in sorted((real_data / "stac" / "items").glob("*.json")):
        found += [(path.name, f) for f in _features(json.loads(path.read_text()))]
    for path in sorted((real_data / "stac" / "responses").glob("*.json")):
        found += [(path.name, f) for f in _features(json.loads(path.read_text())["response"].get("json"))]
    assert len(found) > 20
    return found


# collection -> (band, expected asset key, scale, offset) checked on every item of that collection
EXPECTED = {
    "sentinel-2-l2a": None,  # provider-dependent, checked below
    "sentinel-2-c1-l2a": ("B04", "red", 1e-4, -0.1),
    # Earth Search v0: 2020 items are baseline 02.x; 2025 items are flagged boa_offset_applied
    "sentinel-s2-l2a-cogs": ("B04", "B04", 1e-4, 0.0),
    "cop-dem-glo-30": ("elevation", "data", 1.0, 0.0),
    "landsat-c2-l2": ("B04", "red", 2.75e-5, -0.2),
    "landsat-c2l2-sr": ("B04", "red", 2.75e-5, -0.2),
}
UNSUPPORTED = {"sentinel-1-grd": "radar geometry", "sentinel-2-l1c": "L2A"}


def _bbox_inside(item: pystac.Item):
    w, s, e, n = item.bbox
    cx, cy = (w + e) / 2, (s + n) / 2
    return (cx - 0.01, cy - 0.01, cx + 0.01, cy + 0.01)


def test_every_real_item_is_recognised_and_planned(real_items):
    seen = set()
    for source, d in real_items:
        item = pystac.Item.from_dict(d)
        spec = sensors.identify(item)
        coll = item.collection_id
        seen.add(coll)
        if not item.assets:  # a search with `fields` that excluded assets: nothing to read
            with pytest.raises(MissingBandError, match="has no asset for band"):
                gx.plan_cube([item], bbox=_bbox_inside(item))
            continue
        if coll in UNSUPPORTED:
            with pytest.raises(UnsupportedItemError, match=UNSUPPORTED[coll]):
                gx.plan_cube([item], bbox=_bbox_inside(item))
            continue
        plan = gx.plan_cube([item], bbox=_bbox_inside(item), resolution=10)
        (sp,) = plan.sensors.values()
        assert sp.sensor is spec
        grid = plan.grid
        assert grid.bounds[0] % 10 == 0 and grid.bounds[1] % 10 == 0
        assert grid.shape == (round((grid.bounds[3] - grid.bounds[1]) / 10), round((grid.bounds[2] - grid.bounds[0]) / 10))
        assert grid.crs.utm_zone is not None, source
        if coll == "sentinel-2-l2a":
            pc = "planetarycomputer" in json.dumps(d.get("links", []))
            baseline = item.properties.get("s2:processing_baseline", "99")
            harmonised = item.properties.get("earthsearch:boa_offset_applied", False)
            new = baseline >= "04.00" and not harmonised
            expected = ("B04", "B04" if pc else "red", 1e-4, -0.1 if new else 0.0)
        else:
            expected = EXPECTED[coll]
        band, key, scale, offset = expected
        a = sp.asset(item.id, band)
        assert (a.asset_key, a.scale, a.offset) == pytest.approx((key, scale, offset)) or (
            a.asset_key == key and a.scale == pytest.approx(scale) and a.offset == pytest.approx(offset)
        ), (source, a)
        assert a.href == item.assets[key].href
        # the normalised copy carries proj:epsg for stackstac
        norm = sp.items[0]
        assert band in norm.assets
    assert {"sentinel-2-l2a", "sentinel-1-grd", "cop-dem-glo-30", "sentinel-2-c1-l2a"} <= seen


def test_planetary_computer_s2_items_have_no_offset_before_baseline_4(real_data):
    d = json.loads((real_data / "stac/items/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531_raster_ext.json").read_text())
    item = pystac.Item.from_dict(d)
    plan = gx.plan_cube([item], bbox=_bbox_inside(item))
    sp = plan.sensors["sentinel-2"]
    for band in ("B02", "B03", "B04", "B08", "B11"):
        a = sp.asset(item.id, band)
        assert (a.scale, a.offset, a.nodata) == (1e-4, 0.0, 0)
    assert sp.asset(item.id, "SCL").asset_key == "SCL"
    assert plan.grid.crs.to_epsg() == 32606  # Columbia Glacier, Alaska: UTM 6N


def test_earth_search_harmonised_items_get_no_second_offset(real_data):
    body = json.loads((real_data / "stac/responses/earthsearch_v1_search_filter__01.json").read_text())["response"]["json"]
    (d,) = [f for f in body["features"] if f["collection"] == "sentinel-2-l2a"][:1]
    item = pystac.Item.from_dict(d)
    sp = gx.plan_cube([item], bbox=_bbox_inside(item)).sensors["sentinel-2"]
    assert item.properties["earthsearch:boa_offset_applied"] is True
    assert item.assets["swir16"].extra_fields["raster:bands"][0]["offset"] == -0.1  # stale metadata
    assert sp.asset(item.id, "B11").asset_key == "swir16"
    assert sp.asset(item.id, "B11").offset == 0.0
    c1 = [f for f in body["features"] if f["collection"] == "sentinel-2-c1-l2a"][0]
    c1_plan = gx.plan_cube([pystac.Item.from_dict(c1)], bbox=_bbox_inside(item)).sensors["sentinel-2"]
    assert c1_plan.asset(c1["id"], "B11").offset == -0.1  # collection 1: DNs keep the +1000
    assert sp.asset(item.id, "SCL").asset_key == "scl"
    assert sp.items[0].properties["proj:epsg"] == 32720
