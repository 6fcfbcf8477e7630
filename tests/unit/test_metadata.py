"""Metadata-only Earth Search items at mountain-range scale, and the reader that generates their pixels."""

from __future__ import annotations

import json
import pickle
import time

import numpy as np
import pystac
import pytest
from rasterio.windows import Window
from stackstac.raster_spec import RasterSpec

import glacierxr as gx
from glacierxr import sensors
from glacierxr.errors import AssetReadError
from glacierxr.testing.generated import GeneratedReader, elevation, parse_href, rasterize_truth, true_glacier_mask
from glacierxr.testing.metadata import HMA_BBOX, KARAKORAM_BBOX, dem_items, s2_items, s2_tiles, write_catalog

#: 40 x 45 km straddling the UTM 43/44 line (78 E), with glaciers on both sides for seed 0.
ZONE_LINE_BBOX = (77.8, 34.0, 78.2, 34.4)


@pytest.fixture(scope="module")
def hma(tmp_path_factory):
    t0 = time.perf_counter()
    info = write_catalog(tmp_path_factory.mktemp("hma"), HMA_BBOX)
    info["wall"] = time.perf_counter() - t0
    return info


def test_hma_is_in_the_ballpark_of_earth_search_and_fast(hma):
    # Earth Search, late summer 2023: ~6,245 Sentinel-2 L2A items and ~760 GLO-30 tiles
    assert 5000 <= hma["counts"]["sentinel-2-l2a"] <= 7500
    assert hma["counts"]["cop-dem-glo-30"] == 38 * 20
    assert hma["epsgs"] == list(range(32642, 32649))
    assert hma["wall"] < 30
    ids = hma["ids"]["sentinel-2-l2a"]
    assert len(set(ids)) == len(ids)
    assert "Copernicus_DSM_COG_10_N35_00_E074_00_DEM" in hma["ids"]["cop-dem-glo-30"]
    for cid in ("sentinel-2-l2a", "cop-dem-glo-30"):
        assert (hma["folder"] / cid / "collection.json").exists()
        assert (hma["folder"] / cid / "items.ndjson").exists()


def test_karakoram_spans_two_zones():
    tiles = s2_tiles(KARAKORAM_BBOX)
    assert {t["epsg"] for t in tiles} == {32643, 32644}
    items = s2_items(KARAKORAM_BBOX)
    assert 250 <= len(items) <= 450


def test_s2_items_look_like_earth_search_v1():
    items = s2_items(ZONE_LINE_BBOX, seed=3)
    assert items and all(it["collection"] == "sentinel-2-l2a" for it in items)
    it = items[0]
    item = pystac.Item.from_dict(it)
    assert set(it["assets"]) == {"blue", "green", "red", "nir", "swir16", "scl"}
    zone = int(it["id"].split("_")[1][:2])
    assert it["properties"]["proj:epsg"] == 32600 + zone
    assert it["properties"]["s2:processing_baseline"] == "05.09"
    assert 0 <= it["properties"]["eo:cloud_cover"] <= 100
    red, swir, scl = (it["assets"][k] for k in ("red", "swir16", "scl"))
    assert red["proj:shape"] == [10980, 10980] and swir["proj:shape"] == [5490, 5490] == scl["proj:shape"]
    assert red["proj:transform"][0] == 10 and swir["proj:transform"][0] == 20
    assert red["proj:transform"][2] % 100000 in (0, 99960, 99980)
    assert red["raster:bands"] == [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15,
                                    "spatial_resolution": 10, "scale": 0.0001, "offset": -0.1}]
    assert red["href"].startswith("generated://sentinel-2-l2a/")
    spec = sensors.get("sentinel-2")
    band = next(b for b in spec.bands if b.name == "B04")
    assert sensors.scale_offset(item, "red", band, spec) == (0.0001, -0.1)
    assert parse_href(red["href"])["offset"] == -0.1
    # dates fall in the window, 1-6 per tile, 5-day revisit
    per_tile: dict[str, list[str]] = {}
    for x in items:
        assert "2023-07-15" <= x["properties"]["datetime"][:10] <= "2023-09-30"
        per_tile.setdefault(x["id"].split("_")[1], []).append(x["properties"]["datetime"][:10])
    assert all(1 <= len(v) <= 6 for v in per_tile.values())


def test_boa_offset_applied_items_are_generated_without_the_offset():
    it = s2_items(ZONE_LINE_BBOX, boa_offset_applied=True)[0]
    assert it["properties"]["earthsearch:boa_offset_applied"] is True
    assert parse_href(it["assets"]["red"]["href"])["offset"] == 0.0


def test_dem_items_match_glo30():
    items = dem_items((74.2, 35.1, 75.9, 35.8))
    assert [i["id"] for i in items] == [
        "Copernicus_DSM_COG_10_N35_00_E074_00_DEM", "Copernicus_DSM_COG_10_N35_00_E075_00_DEM"]
    p = items[0]["properties"]
    assert p["proj:epsg"] == 4326 and p["proj:shape"] == [3600, 3600]
    assert p["proj:transform"][2] == pytest.approx(74 - 0.5 / 3600)
    assert dem_items((10.0, 55.2, 10.5, 55.4))[0]["properties"]["proj:shape"] == [3600, 2400]


def _reader(band="red", bounds="0,0,1000000,10000000", epsg=32643, spec=None, **extra):
    q = "&".join(f"{k}={v}" for k, v in extra.items())
    url = f"generated://c/i/a.tif?band={band}&epsg={epsg}&bounds={bounds}&scale=0.0001&offset=-0.1&nodata=0&seed=0&{q}"
    spec = spec or RasterSpec(epsg=32643, bounds=(700000, 3700000, 802400, 3802400), resolutions_xy=(100, 100))
    return GeneratedReader(url=url, spec=spec, resampling=None, dtype=np.dtype("float32"), fill_value=np.nan,
                           scale_offset=(1, 0), gdal_env=None)


def test_reader_is_fast_picklable_and_fills_outside_its_bounds():
    r = _reader()
    t0 = time.perf_counter()
    a = r.read(Window(0, 0, 1024, 1024))
    assert time.perf_counter() - t0 < 3.0  # ~0.4 s on an idle core
    assert a.shape == (1024, 1024) and np.isfinite(a).all()
    assert 1 <= a.min() and a.max() <= 65535 and np.array_equal(a, np.round(a))
    r2 = pickle.loads(pickle.dumps(r))
    # the same pixels through another window: equal up to the rounding of the interpolated lattice
    assert np.abs(r2.read(Window(10, 20, 30, 40)) - a[20:60, 10:40]).max() <= 1
    half = _reader(bounds="700000,3700000,751200,3802400").read(Window(0, 0, 1024, 1024))
    assert np.isnan(half[:, 512:]).all() and np.isfinite(half[:, :512]).all()
    with pytest.raises(AssetReadError):
        _reader(band="nope")


def test_reflectance_dns_follow_the_glacier_field():
    spec = RasterSpec(epsg=32644, bounds=(200000, 3760000, 250000, 3810000), resolutions_xy=(100, 100))
    red = _reader("red", spec=spec).read(Window(0, 0, 500, 500)) * 1e-4 - 0.1
    swir = _reader("swir16", spec=spec).read(Window(0, 0, 500, 500)) * 1e-4 - 0.1
    scl = _reader("scl", spec=spec).read(Window(0, 0, 500, 500))
    truth = rasterize_truth(32644, tuple(spec.transform)[:6], (500, 500))
    assert 0.02 < truth.mean() < 0.6
    assert (red[truth] > 0.55).all() and (swir[truth] < 0.1).all()
    assert (red[~truth] / swir[~truth] < 1.5).all()
    assert (scl[truth] == 11).all() and np.isin(scl[~truth], (4, 5)).all()


def test_glaciers_cross_the_zone_line_and_span_sizes():
    from scipy import ndimage

    lon, lat = np.meshgrid(np.arange(77.5, 78.5, 0.001), np.arange(34.6, 34.0, -0.001))
    ice = true_glacier_mask(lon, lat)
    labels, n = ndimage.label(ice)
    west = set(np.unique(labels[:, (lon[0] > 77.99) & (lon[0] < 78.0)])) - {0}
    east = set(np.unique(labels[:, (lon[0] > 78.0) & (lon[0] < 78.01)])) - {0}
    assert west & east  # one glacier on both sides of 78 E
    areas = np.bincount(labels.ravel())[1:] * (0.001 * 111.0) ** 2 * np.cos(np.radians(34.3))
    assert areas.min() < 0.5 and areas.max() > 20  # km2: a few pixels to tens of km2
    assert np.all(np.diff(elevation(np.array([78.0, 78.0]), np.array([34.2, 34.2])))) == 0


def test_stackstac_items_of_two_zones_agree_and_band_ratio_maps_the_field(monkeypatch):
    import stackstac

    items = s2_items(ZONE_LINE_BBOX)
    assert {i["properties"]["proj:epsg"] for i in items} == {32643, 32644}
    arr = stackstac.stack(items, assets=["red"], epsg=32644, resolution=100, bounds_latlon=ZONE_LINE_BBOX,
                          reader=GeneratedReader, rescale=False, dtype="float32", fill_value=np.float32(np.nan))
    v = arr.sel(band="red").values
    valid = np.isfinite(v)
    epsg = np.array([int(i) for i in arr["proj:epsg"].values])
    both = valid[epsg == 32643].any(0) & valid[epsg == 32644].any(0)
    assert both.mean() > 0.2
    assert np.nanmax(np.nanstd(np.where(valid, v, np.nan), axis=0)) == 0  # same value from every item

    import glacierxr.cube

    monkeypatch.setattr(glacierxr.cube, "READER", GeneratedReader)
    found = {"sentinel-2": pystac.ItemCollection([pystac.Item.from_dict(i) for i in items]),
             "dem": pystac.ItemCollection([pystac.Item.from_dict(i) for i in dem_items(ZONE_LINE_BBOX)])}
    cube = gx.open_cube(found, bbox=ZONE_LINE_BBOX, resolution=100)
    prob = cube.glacier.predict(gx.models.create("band-ratio", bands=["B03", "B04", "B08", "B11"]),
                                window=256, overlap=32, device="cpu").compute()
    x, y = cube.x.values, cube.y.values
    truth = rasterize_truth(32644, (100, 0, x[0] - 50, 0, -100, y[0] + 50), prob.shape)
    pred = prob.values > 0.5
    assert 0.05 < truth.mean() < 0.6
    assert (pred & truth).sum() / (pred | truth).sum() > 0.95
    assert float(abs(cube.elevation - 0).max()) > 4000


def test_catalog_files_are_one_item_per_line(tmp_path):
    info = write_catalog(tmp_path, ZONE_LINE_BBOX, seed=1)
    lines = (tmp_path / "sentinel-2-l2a" / "items.ndjson").read_text().splitlines()
    assert [json.loads(s)["id"] for s in lines] == info["ids"]["sentinel-2-l2a"]
    coll = json.loads((tmp_path / "sentinel-2-l2a" / "collection.json").read_text())
    assert coll["type"] == "Collection" and coll["id"] == "sentinel-2-l2a"
