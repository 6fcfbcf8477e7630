"""The synthetic regions are seeded, physically plausible and described like real provider items."""

from __future__ import annotations

import json

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
