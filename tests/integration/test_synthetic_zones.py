"""A synthetic region across a UTM zone line reads back on either zone's grid.

The region straddles lon 90 (UTM 45N / 46N) and lat 28 (four 1-degree DEM tiles). It is published
like the real archives: Sentinel-2 tiles in each zone's own CRS, 1-degree DEM tiles, outlines in
EPSG:4326. Read through the local STAC API and stacked onto the 45N or the 46N grid, the band-ratio
glacier mask must reproduce the true glaciers there.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from rasterio import features

import glacierxr as gx
from glacierxr.stac_server import serve
from glacierxr.synthetic import make_region

#: seed 0 at 512 x 768 px centred on (90.0, 28.0), the older massif world (these tests are about the
#: zone line, not the terrain): 9 glaciers, 2 across lon 90 (one of ~12 km^2)
SEED, SHAPE, CENTER = 0, (512, 768), (90.0, 28.0)


@pytest.fixture(scope="module")
def zone_region(tmp_path_factory):
    return make_region(tmp_path_factory.mktemp("zones"), seed=SEED, shape=SHAPE, center=CENTER, dates=2,
                       terrain="massif")


@pytest.fixture(scope="module")
def zone_items(zone_region):
    with serve(zone_region.stac_dir) as url:
        yield gx.search(url, bbox=zone_region.bbox, datetime=zone_region.datetime, sensors=("sentinel-2", "dem"))


@pytest.fixture(scope="module")
def truth(zone_region):
    return gpd.read_file(zone_region.truth_path, layer="glaciers")


def test_the_region_has_glaciers_across_the_zone_line(zone_region, truth):
    assert zone_region.zones == ["EPSG:32645", "EPSG:32646"]
    across = truth[truth.zones == "EPSG:32645,EPSG:32646"]
    assert len(across) == 2 and across.area_km2.max() > 5


def test_search_finds_the_tiles_of_both_zones(zone_region, zone_items):
    s2 = zone_items["sentinel-2"]
    # pystac may migrate proj:epsg to projection v2's proj:code on reading
    codes = {it.properties.get("proj:code") or f"EPSG:{it.properties['proj:epsg']}" for it in s2}
    assert codes == {"EPSG:32645", "EPSG:32646"}
    assert len(s2) == sum(len(t.item_ids) for t in zone_region.tiles)
    assert len(zone_items["dem"]) == 4


@pytest.mark.parametrize("crs", ["EPSG:32645", "EPSG:32646"])
def test_band_ratio_on_either_zone_grid_reproduces_the_glaciers(zone_region, zone_items, truth, crs):
    cube = gx.open_cube(zone_items, bbox=zone_region.bbox, crs=crs, chunks=1024)
    assert cube.rio.crs.to_epsg() == int(crs[5:])
    model = gx.models.create("band-ratio", bands=["B03", "B04", "B08", "B11"])
    mask = cube.glacier.predict(model).compute().values > 0.5
    valid = np.isfinite(cube.B04.values)
    ref = features.rasterize(truth.to_crs(crs).geometry, out_shape=mask.shape, transform=cube.rio.transform()).astype(bool)
    assert valid.mean() > 0.85  # the UTM rectangle around the lon/lat bbox reaches a little beyond the world
    iou = (mask & ref & valid).sum() / ((mask | ref) & valid).sum()
    assert iou > 0.9, iou
    # the elevation mosaics the four DEM tiles without gaps
    assert np.isfinite(cube.elevation.values).all()


def test_radar_scenes_of_both_zones_mosaic_onto_one_grid(zone_region):
    with serve(zone_region.stac_dir) as url:
        items = gx.search(url, bbox=zone_region.bbox, datetime=zone_region.datetime, sensors=("sentinel-1",))
    assert len(items["sentinel-1"]) == 2 * len(zone_region.zones)  # one scene per zone and date
    cube = gx.open_cube(items, bbox=zone_region.bbox, crs="EPSG:32645", chunks=1024, indices=False)
    vv = cube.VV.values
    assert np.isfinite(vv).mean() > 0.85
    truth = np.median(zone_region.arrays["vv"], axis=0)  # the cube's median composite, on the master grid
    assert abs(np.nanmedian(vv) / np.median(truth) - 1) < 0.05
