"""The datacube equals what the synthetic region was made of, on the exact grid, lazily."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine
from scipy import ndimage

import glacierxr as gx
from glacierxr.geo import grid_from_bbox, lonlat_of
from glacierxr.sensors import SCL_MASKED
from glacierxr.stac_server import serve
from glacierxr.synthetic import make_region

from ..conftest import ComputeForbidden


@pytest.fixture(scope="module")
def items(region, stac_url):
    return gx.search(stac_url, bbox=region.bbox, datetime=region.datetime)


@pytest.fixture(scope="module")
def cube(region, items):
    return gx.open_cube(items, bbox=region.bbox, resolution=10, chunks=128).compute()


def _sample(region, cube, n=400, seed=0):
    """Random interior pixels of the region: (rows, cols) in the region grid and in the cube."""
    rng = np.random.default_rng(seed)
    h, w = region.shape
    r = rng.integers(2, h - 2, n)
    c = rng.integers(2, w - 2, n)
    t = region.transform
    x = t.c + (c + 0.5) * t.a
    y = t.f + (r + 0.5) * t.e
    ci = np.rint((x - float(cube.x[0])) / 10).astype(int)
    ri = np.rint((float(cube.y[0]) - y) / 10).astype(int)
    np.testing.assert_allclose(cube.x.values[ci], x)
    np.testing.assert_allclose(cube.y.values[ri], y)
    return r, c, ri, ci


def test_grid_matches_bbox_and_resolution_exactly(region, cube):
    grid = grid_from_bbox(region.bbox, resolution=10)
    assert cube.sizes == {"y": grid.shape[0], "x": grid.shape[1]}
    np.testing.assert_array_equal(cube.x.values, grid.x)
    np.testing.assert_array_equal(cube.y.values, grid.y)
    assert grid.bounds[0] % 10 == 0 and grid.bounds[3] % 10 == 0
    assert cube.rio.crs.to_epsg() == int(region.crs.split(":")[1])
    assert cube.rio.transform() == grid.transform


def test_variables_are_float32_with_sources(cube, region):
    expected = {"B02", "B03", "B04", "B08", "B11", "VV", "VH", "elevation", "NDVI", "NDSI", "NDWI"}
    assert set(cube.data_vars) == expected
    assert all(cube[v].dtype == np.float32 for v in cube.data_vars)
    assert cube.attrs["source_items"]["sentinel-2"] == region.collections["sentinel-2-l2a"]


def test_optical_composite_equals_truth(region, cube):
    r, c, ri, ci = _sample(region, cube)
    a = region.arrays
    valid = ~np.isin(a["scl"][:, r // 2, c // 2], SCL_MASKED)  # (date, n)
    has = valid.any(axis=0)
    assert has.mean() > 0.9
    for i, band in enumerate(["B02", "B03", "B04", "B08", "B11"]):
        truth = a["b11"][:, r // 2, c // 2] if band == "B11" else a["reflectance"][:, i, r, c]
        expected = np.nanmedian(np.where(valid, truth, np.nan)[:, has], axis=0)
        got = cube[band].values[ri, ci][has]
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0, err_msg=band)
    assert np.isnan(cube["B04"].values[ri, ci][~has]).all()


def test_sar_composite_equals_truth(region, cube):
    r, c, ri, ci = _sample(region, cube, seed=1)
    for band in ("VV", "VH"):
        expected = np.median(region.arrays[band.lower()][:, r, c], axis=0)
        np.testing.assert_allclose(cube[band].values[ri, ci], expected, rtol=1e-6)


def test_elevation_is_the_dem_interpolated_bilinearly(region, cube):
    r, c, ri, ci = _sample(region, cube, seed=2)
    lon, lat = lonlat_of(cube.rio.crs, cube.x.values[ci], cube.y.values[ri])
    dem = region.arrays["dem"]
    t = _dem_transform(region)
    col, row = (lon - t.c) / t.a, (lat - t.f) / t.e
    expected = ndimage.map_coordinates(dem.astype(np.float64), [row - 0.5, col - 0.5], order=1)
    got = cube["elevation"].values[ri, ci]
    # GDAL's warper uses an approximate transformer (max error 0.125 source pixels)
    slope = np.hypot(*np.gradient(dem.astype(np.float64)))
    tolerance = 0.13 * slope.max() + 1e-3
    np.testing.assert_allclose(got, expected, atol=tolerance)
    assert np.median(np.abs(got - expected)) < 0.2
    # and the 30 m DEM is the region's true 10 m surface up to its coarser sampling
    assert np.median(np.abs(got - region.arrays["elevation"][r, c])) < 5


def _dem_transform(region):
    line = (region.stac_dir / "cop-dem-glo-30" / "items.ndjson").read_text().splitlines()[0]
    return Affine(*json.loads(line)["properties"]["proj:transform"])


def test_indices_follow_their_formulas(cube):
    ndsi = (cube.B03 - cube.B11) / (cube.B03 + cube.B11)
    xr.testing.assert_allclose(cube.NDSI, ndsi.astype("float32"), rtol=1e-5)
    ndvi = (cube.B08 - cube.B04) / (cube.B08 + cube.B04)
    xr.testing.assert_allclose(cube.NDVI, ndvi.astype("float32"), rtol=1e-5)


def test_open_cube_reads_nothing(region, items, no_compute):
    ds = gx.open_cube(items, bbox=region.bbox, chunks=128)
    assert all(hasattr(ds[v].data, "dask") for v in ds.data_vars)
    with pytest.raises(ComputeForbidden):
        ds.B04.sum().compute()


def test_cube_survives_other_chunkings(region, items, cube):
    other = gx.open_cube(items, bbox=region.bbox, chunks=100).compute()
    xr.testing.assert_identical(other.drop_attrs(), cube.drop_attrs())


def test_southern_hemisphere_and_old_baseline(tmp_path):
    reg = make_region(tmp_path, seed=3, shape=(128, 128), center=(-73.2, -49.3), year=2021, dates=2)
    assert reg.crs == "EPSG:32718"
    with serve(reg.stac_dir) as url:
        items = gx.search(url, bbox=reg.bbox, datetime=reg.datetime, sensors=("sentinel-2",))
    plan = gx.plan_cube(items, bbox=reg.bbox)
    assert {a.offset for a in plan.sensors["sentinel-2"].assets if a.band != "SCL"} == {0.0}
    ds = gx.open_cube(items, bbox=reg.bbox).compute()
    assert ds.rio.crs.to_epsg() == 32718
    t = reg.transform
    ri = np.rint((float(ds.y[0]) - (t.f - 64 * 10 - 5)) / 10).astype(int)
    ci = np.rint((t.c + 64 * 10 + 5 - float(ds.x[0])) / 10).astype(int)
    scl = reg.arrays["scl"][:, 32, 32]
    vals = reg.arrays["reflectance"][:, 2, 64, 64][~np.isin(scl, SCL_MASKED)]
    np.testing.assert_allclose(ds.B04.values[ri, ci], np.median(vals), atol=1e-4)


def test_aligned_reader_equals_stackstac_warping(region, items, cube, monkeypatch):
    from stackstac.rio_reader import AutoParallelRioReader

    from glacierxr import cube as cube_module

    monkeypatch.setattr(cube_module, "READER", AutoParallelRioReader)
    warped = gx.open_cube(items, bbox=region.bbox, chunks=128).compute()
    # the warped DEM differs: stackstac's WarpedVRT approximates the transformation (GDAL's
    # 0.125 pixel tolerance), AlignedReader's is exact (glacierxr.reader._ExactWarpSpec)
    xr.testing.assert_identical(warped.drop_vars("elevation"), cube.drop_vars("elevation"))
    diff = np.abs(warped["elevation"] - cube["elevation"])
    assert 0 < float(diff.max()) < 2.0 and float(diff.mean()) < 0.1
