"""gx.search pages to the end of a result (> 500 items per sensor) and says so when max_items cuts it."""

from __future__ import annotations

import warnings

import pytest

import glacierxr as gx
from glacierxr.errors import InvalidArgumentError, SearchLimitWarning
from glacierxr.stac_server import serve
from glacierxr.testing.metadata import write_catalog

S2_BBOX = (71.0, 31.0, 80.0, 38.0)  # ~650 Sentinel-2 items, 3 UTM zones
DEM_BBOX = (60.0, 20.0, 86.0, 40.0)  # 520 Copernicus DEM tiles
WHEN = "2023-07-15/2023-09-30"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paging")
    s2 = write_catalog(folder, S2_BBOX, WHEN, dem=False)
    dem = write_catalog(folder, DEM_BBOX, WHEN, sentinel2=False)
    assert s2["counts"]["sentinel-2-l2a"] > 500 and dem["counts"]["cop-dem-glo-30"] > 500
    with serve(folder) as url:
        yield url, set(s2["ids"]["sentinel-2-l2a"]), set(dem["ids"]["cop-dem-glo-30"])


def test_search_pages_to_the_end_of_every_sensor(catalog):
    url, s2_ids, dem_ids = catalog
    with warnings.catch_warnings():
        warnings.simplefilter("error", SearchLimitWarning)
        s2 = gx.search(url, bbox=S2_BBOX, datetime=WHEN, sensors=("sentinel-2",))["sentinel-2"]
        dem = gx.search(url, bbox=DEM_BBOX, datetime=WHEN, sensors=("dem",))["dem"]
    assert [it.id for it in s2] and {it.id for it in s2} == s2_ids and len(s2) == len(s2_ids)
    assert {it.id for it in dem} == dem_ids and len(dem) == len(dem_ids)


def test_small_pages_give_the_same_items(catalog):
    url, s2_ids, _ = catalog
    s2 = gx.search(url, bbox=S2_BBOX, datetime=WHEN, sensors=("sentinel-2",), limit=97)["sentinel-2"]
    assert {it.id for it in s2} == s2_ids


def test_a_max_items_that_is_hit_warns_and_logs(catalog, caplog):
    url, s2_ids, _ = catalog
    with pytest.warns(SearchLimitWarning, match=r"sentinel-2.*max_items=120.*max_items=None") as rec:
        s2 = gx.search(url, bbox=S2_BBOX, datetime=WHEN, sensors=("sentinel-2",), max_items=120)["sentinel-2"]
    assert len(s2) == 120 and {it.id for it in s2} <= s2_ids
    assert issubclass(rec[0].category, UserWarning)
    assert any("max_items=120" in r.getMessage() for r in caplog.records)
    # a limit the result fits in exactly is not "hit"
    with warnings.catch_warnings():
        warnings.simplefilter("error", SearchLimitWarning)
        assert len(gx.search(url, bbox=S2_BBOX, datetime=WHEN, sensors=("sentinel-2",),
                             max_items=len(s2_ids))["sentinel-2"]) == len(s2_ids)


def test_intersects_polygon_instead_of_bbox(catalog):
    url, s2_ids, _ = catalog
    w, s, e, n = S2_BBOX
    square = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    got = gx.search(url, intersects=square, datetime=WHEN, sensors=("sentinel-2",))["sentinel-2"]
    assert {it.id for it in got} == s2_ids
    tri = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [w, n], [w, s]]]}
    part = {it.id for it in gx.search(url, intersects=tri, datetime=WHEN, sensors=("sentinel-2",))["sentinel-2"]}
    assert part < s2_ids and len(part) > 100


def test_bbox_or_intersects_is_required_and_checked():
    with pytest.raises(InvalidArgumentError, match="exactly one of bbox"):
        gx.search("http://127.0.0.1:9", datetime=WHEN)
    with pytest.raises(InvalidArgumentError, match="exactly one of bbox"):
        gx.search("http://127.0.0.1:9", bbox=S2_BBOX, intersects={"type": "Point", "coordinates": [75, 35]},
                  datetime=WHEN)
    with pytest.raises(InvalidArgumentError, match="not a GeoJSON geometry"):
        gx.search("http://127.0.0.1:9", intersects={"type": "Circle"}, datetime=WHEN)
    with pytest.raises(InvalidArgumentError, match="outside lon"):
        gx.search("http://127.0.0.1:9", intersects={"type": "Point", "coordinates": [35, 200]}, datetime=WHEN)
    with pytest.raises(InvalidArgumentError, match="max_items"):
        gx.search("http://127.0.0.1:9", bbox=S2_BBOX, datetime=WHEN, max_items=0)
