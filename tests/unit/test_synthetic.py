"""The synthetic regions are seeded, physically plausible and described like real provider items."""

from __future__ import annotations

import json
import re

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from glacierxr.errors import GridError
from glacierxr.synthetic import make_region


def _items(region, collection):
    return [json.loads(x) for x in (region.stac_dir / collection / "items.ndjson").read_text().splitlines()]


@pytest.fixture(scope="module")
def demo_region(tmp_path_factory):
    """The demo's region (seed 0), at 768 x 768 px."""
    return make_region(tmp_path_factory.mktemp("demo"), seed=0, shape=(768, 768))


def test_region_has_glaciers_debris_nunataks_lakes_and_clouds(demo_region):
    region = demo_region
    a = region.arrays
    assert 0.05 < a["glacier"].mean() < 0.7
    assert a["debris"].any() and not (a["debris"] & ~a["glacier"]).any()
    truth = gpd.read_file(region.truth_path)
    assert len(truth) >= 1 and truth.crs.to_epsg() == int(region.crs.split(":")[1])
    assert sum(len(g.interiors) for p in truth.geometry for g in getattr(p, "geoms", [p])) > 0  # nunataks
    assert np.isclose(truth.area.sum(), a["glacier"].sum() * 100, rtol=1e-6)
    clouds = [it["properties"]["eo:cloud_cover"] for it in _items(region, "sentinel-2-l2a")]
    assert clouds[0] == 0 and max(clouds) > 5
    masks = np.load(region.truth_path.parent / "masks.npz")
    assert masks["water"].any()  # a proglacial lake


def test_spectra_separate_ice_snow_debris_and_rock(demo_region):
    a = demo_region.arrays
    refl = a["reflectance"][-1]
    cls = a["classes"][-1]
    red = refl[2]
    swir = np.repeat(np.repeat(a["b11"][-1], 2, 0), 2, 1)
    ratio = red / swir
    assert np.median(ratio[cls == 5]) > 5  # clean ice: red/SWIR ratio far above 2
    assert np.median(ratio[cls == 0]) < 1  # rock
    assert np.median(red[cls == 3]) > np.median(red[cls == 5]) > np.median(red[cls == 6])


def test_items_carry_what_real_items_carry(region):
    s2 = _items(region, "sentinel-2-l2a")[0]
    assert s2["collection"] == "sentinel-2-l2a" and s2["properties"]["proj:epsg"] == int(region.crs[5:])
    assert set(s2["assets"]) == {"blue", "green", "red", "nir", "swir16", "scl"}
    rb = s2["assets"]["red"]["raster:bands"][0]
    assert (rb["scale"], rb["offset"], rb["nodata"]) == (0.0001, -0.1, 0)
    assert s2["properties"]["s2:processing_baseline"] >= "04.00"
    assert s2["assets"]["swir16"]["proj:shape"] == [region.shape[0] // 2, region.shape[1] // 2]
    s1 = _items(region, "sentinel-1-rtc")[0]
    assert set(s1["assets"]) == {"vv", "vh"} and s1["properties"]["proj:code"] == region.crs
    dem = _items(region, "cop-dem-glo-30")[0]
    assert dem["properties"]["proj:code"] == "EPSG:4326" and set(dem["assets"]) == {"data"}
    with rasterio.open(dem["assets"]["data"]["href"].replace("file://", "")) as src:
        assert src.crs.to_epsg() == 4326 and abs(src.res[0] - 1 / 3600) < 1e-12
    with rasterio.open(s2["assets"]["red"]["href"].replace("file://", "")) as src:
        assert src.nodata == 0 and src.profile["blockxsize"] == 256 and src.dtypes[0] == "uint16"


def test_same_seed_same_region(tmp_path):
    a = make_region(tmp_path / "a", seed=7, shape=(96, 96), dates=2)
    b = make_region(tmp_path / "b", seed=7, shape=(96, 96), dates=2)
    c = make_region(tmp_path / "c", seed=8, shape=(96, 96), dates=2)
    np.testing.assert_array_equal(a.arrays["reflectance"], b.arrays["reflectance"])
    assert not np.array_equal(a.arrays["elevation"], c.arrays["elevation"])


def test_bad_shape_is_refused(tmp_path):
    with pytest.raises(GridError, match="even"):
        make_region(tmp_path, shape=(101, 100))


# ----------------------------------------------------------------------------- regions across UTM zones

ZONE_CENTER = (90.0, 28.0)  # the 45N/46N boundary; lat 28 is also a DEM tile line


@pytest.fixture(scope="module")
def zone_region(tmp_path_factory):
    """A small region across lon 90 (UTM 45N/46N), published per zone (tiling chosen automatically)."""
    return make_region(tmp_path_factory.mktemp("zones"), seed=1, shape=(256, 384), center=ZONE_CENTER, dates=2)


def test_a_region_across_a_zone_line_is_published_per_zone(zone_region):
    region = zone_region
    assert region.tiling == "mgrs" and region.zones == ["EPSG:32645", "EPSG:32646"]
    assert region.crs == "EPSG:32646"  # the master grid: the zone of the centre
    w, s, e, n = region.bbox
    assert w < 90.0 < e and s < 28.0 < n
    s2 = _items(region, "sentinel-2-l2a")
    ids = [it["id"] for it in s2]
    assert len(ids) == len(set(ids)) == sum(len(t.item_ids) for t in region.tiles)
    assert all(re.fullmatch(r"S2B_4[56]R[A-Z]{2}_2023\d{4}_0_L2A", i) for i in ids)
    for tile in region.tiles:
        assert tile.code.startswith(tile.crs[-2:]) and tile.shape[0] == tile.shape[1]
        for it in (x for x in s2 if x["id"] in tile.item_ids):
            assert f"EPSG:{it['properties']['proj:epsg']}" == tile.crs
            assert it["properties"]["grid:code"] == f"MGRS-{tile.code}"
            assert it["assets"]["red"]["proj:shape"] == list(tile.shape)
            assert it["assets"]["swir16"]["proj:shape"] == [tile.shape[0] // 2, tile.shape[1] // 2]
            assert it["assets"]["scl"]["proj:transform"][0] == 20
            assert it["assets"]["red"]["raster:bands"][0]["offset"] == -0.1
    assert {t.crs for t in region.tiles} == set(region.zones)
    # same-day tiles share one datetime
    by_day: dict[str, set[str]] = {}
    for it in s2:
        by_day.setdefault(it["properties"]["datetime"][:10], set()).add(it["properties"]["datetime"])
    assert len(by_day) == 2 and all(len(v) == 1 for v in by_day.values())
    # neighbouring tiles overlap by ~10 % like the 109.8 km tiles on the 100 km grid
    one = [t for t in region.tiles if t.crs == "EPSG:32646"]
    xs = sorted({t.bounds[0] for t in one})
    if len(xs) > 1:
        side = one[0].bounds[2] - one[0].bounds[0]
        assert 0.85 < (xs[1] - xs[0]) / side < 0.95
    s1 = _items(region, "sentinel-1-rtc")
    assert sorted({it["properties"]["proj:code"] for it in s1}) == region.zones and len(s1) == 4


def test_zone_tiles_hold_only_their_part_of_the_world(zone_region):
    region = zone_region
    it = next(x for x in _items(region, "sentinel-2-l2a") if x["properties"]["proj:epsg"] == 32645)
    with rasterio.open(it["assets"]["red"]["href"].replace("file://", "")) as src:
        assert src.crs.to_epsg() == 32645 and src.res == (10.0, 10.0) and src.nodata == 0
        red = src.read(1)
    with rasterio.open(it["assets"]["swir16"]["href"].replace("file://", "")) as src:
        assert src.res == (20.0, 20.0)
    valid = red > 0
    assert 0 < valid.mean() < 1  # the region covers part of the tile; the rest is nodata
    # values are the master grid's DNs, warped by nearest neighbour: no new values appear
    dn = np.clip(np.round((region.arrays["reflectance"][:, 2] + 0.1) * 10000), 1, 65535).astype(np.uint16)
    assert np.isin(red[valid], dn).all()


def test_zone_region_dem_is_one_degree_tiles(zone_region):
    dem = _items(zone_region, "cop-dem-glo-30")
    assert sorted(it["id"] for it in dem) == [
        "Copernicus_DSM_COG_10_N27_00_E089_00_DEM", "Copernicus_DSM_COG_10_N27_00_E090_00_DEM",
        "Copernicus_DSM_COG_10_N28_00_E089_00_DEM", "Copernicus_DSM_COG_10_N28_00_E090_00_DEM",
    ]
    for it in dem:
        with rasterio.open(it["assets"]["data"]["href"].replace("file://", "")) as src:
            assert src.crs.to_epsg() == 4326 and src.shape == (3600, 3600)
            w, s, e, n = src.bounds
            assert (e - w, n - s) == (1.0, 1.0) and float(w).is_integer() and float(s).is_integer()
            assert it["bbox"] == [w, s, e, n]


def test_zone_region_truth_is_geographic_with_glaciers_across_the_line(zone_region):
    truth = gpd.read_file(zone_region.truth_path, layer="glaciers")
    assert truth.crs.to_epsg() == 4326 and zone_region.truth_crs == "EPSG:4326"
    across = truth[truth.zones == "EPSG:32645,EPSG:32646"]
    assert len(across) >= 1
    assert all(g.bounds[0] < 90.0 < g.bounds[2] for g in across.geometry)
    # areas are measured on the master grid, before the outlines go to lon/lat
    assert np.isclose(truth.area_km2.sum(), zone_region.arrays["glacier"].sum() * 100 / 1e6, rtol=1e-6)


def test_regions_inside_one_zone_keep_the_single_layout(demo_region):
    assert demo_region.tiling == "single" and demo_region.zones == [demo_region.crs]
    assert [t.item_ids for t in demo_region.tiles] == [demo_region.collections["sentinel-2-l2a"]]
    assert "dem" in demo_region.arrays


def test_mgrs_tiling_can_be_asked_for_inside_one_zone(tmp_path):
    region = make_region(tmp_path, seed=7, shape=(128, 192), dates=1, tiling="mgrs", s2_tile_px=96)
    assert region.tiling == "mgrs" and region.zones == [region.crs] == ["EPSG:32645"]
    assert len(region.tiles) >= 2 and all(t.shape == (96, 96) for t in region.tiles)
    dem = _items(region, "cop-dem-glo-30")
    assert [it["id"] for it in dem] == ["Copernicus_DSM_COG_10_N27_00_E086_00_DEM"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(tiling="utm"), "tiling"),
    (dict(tiling="mgrs", s2_tile_px=63), "s2_tile_px"),
    (dict(tiling="mgrs", s2_tile_px=32), "s2_tile_px"),
])
def test_bad_tiling_options_are_refused(tmp_path, kwargs, match):
    with pytest.raises(GridError, match=match):
        make_region(tmp_path, shape=(96, 96), dates=1, **kwargs)


def test_the_range_truth_lists_glaciers_split_at_ice_divides_and_their_complexes(demo_region):
    glaciers = gpd.read_file(demo_region.truth_path)
    complexes = gpd.read_file(demo_region.complexes_path)
    assert len(glaciers) > len(complexes) >= 5
    assert set(glaciers["complex_id"]) == set(complexes["complex_id"])
    per_complex = glaciers.groupby("complex_id").size()
    assert (per_complex >= 2).sum() >= 2  # ice masses that span a divide
    assert (complexes.set_index("complex_id")["n_glaciers"] == per_complex).all()
    assert glaciers["area_km2"].sum() == pytest.approx(complexes["area_km2"].sum(), rel=1e-9)
    area = glaciers["area_km2"]
    assert area.max() > 1.0 and (area < 0.5).sum() >= 10  # valley glaciers and small cirque/hanging ones
    a = demo_region.arrays
    z, ice, debris = a["elevation"], a["glacier"], a["debris"]
    assert np.median(z[debris]) < np.median(z[ice])  # debris on the tongues


def test_massif_terrain_keeps_the_old_world(tmp_path):
    r = make_region(tmp_path, seed=3, shape=(256, 256), dates=1, terrain="massif")
    glaciers = gpd.read_file(r.truth_path)
    assert len(glaciers) >= 1
    assert list(glaciers["glac_id"]) == list(glaciers["complex_id"].str.replace("C", "G"))
    with pytest.raises(GridError, match="terrain"):
        make_region(tmp_path / "x", shape=(64, 64), terrain="alps")


def test_glacier_entities_split_connected_ice_at_catchment_borders():
    from glacierxr.ranges import glacier_entities

    ice = np.zeros((40, 60), bool)
    ice[10:30, 5:55] = True
    catchments = np.where(np.arange(60) < 30, 1, 2)[None].repeat(40, 0)
    catchments[10:12, 40:45] = 1  # a 10-pixel sliver of catchment 1 inside 2's ice
    glaciers, complexes = glacier_entities(ice, catchments, min_px=20)
    assert complexes.max() == 1 and glaciers.max() == 2
    assert (glaciers[10:12, 40:45] == glaciers[20, 50]).all()  # the sliver joined its neighbour
    assert (glaciers[ice] > 0).all() and (glaciers[~ice] == 0).all()


def test_size_stats_match_their_definition():
    from glacierxr.ranges import size_stats

    s = size_stats(np.array([0.1, 0.2, 0.3, 0.4, 10.0]), region_km2=50.0)
    assert s["n"] == 5 and s["per_100km2"] == 10.0 and s["glacierised"] == pytest.approx(0.22)
    assert s["q50"] == pytest.approx(0.3)
