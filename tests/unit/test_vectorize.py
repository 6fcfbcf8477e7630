"""Outlines: chunk-invariant stitching, holes, filters, simplification, labels, errors."""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr
from rasterio import features
from scipy import ndimage
from shapely.geometry import shape

import glacierxr  # noqa: F401  (registers .glacier)
from glacierxr.errors import CRSError, InvalidArgumentError
from glacierxr.synthetic import _fbm


def raster(values, crs="EPSG:32645", res=10.0, origin=(5e5, 3e6)):
    h, w = values.shape
    x0, y0 = origin
    da = xr.DataArray(values, dims=("y", "x"),
                      coords={"y": y0 - res / 2 - res * np.arange(h), "x": x0 + res / 2 + res * np.arange(w)})
    return da.rio.write_crs(crs)


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    field = ndimage.gaussian_filter(_fbm(rng, (900, 700), 3.0), 2)
    return raster((field > 0.3).astype(np.float32))


def test_chunkings_give_the_same_polygons(blobs):
    results = [blobs.chunk(c).glacier.outlines(min_area_km2=0, min_hole_km2=0) for c in (256, 1024)]
    results.append(blobs.glacier.outlines(min_area_km2=0, min_hole_km2=0))
    counts = {len(r) for r in results}
    assert len(counts) == 1 and counts.pop() > 20
    union = [shapely.union_all(r.geometry.values) for r in results]
    total = union[-1].area
    for u in union[:-1]:
        assert u.symmetric_difference(union[-1]).area < 1e-3 * total
    for r in results:
        assert r.is_valid.all() and (r.geom_type == "Polygon").all()
        np.testing.assert_allclose(sorted(r.area_km2), sorted(results[-1].area_km2))


def test_equals_whole_raster_polygonisation(blobs):
    got = blobs.chunk(128).glacier.outlines(min_area_km2=0, min_hole_km2=0)
    mask = blobs.values.astype(np.int32)
    ref = [shape(g) for g, v in features.shapes(mask, transform=blobs.rio.transform(), connectivity=4) if v == 1]
    assert len(got) == len(ref)
    assert shapely.union_all(ref).symmetric_difference(shapely.union_all(got.geometry.values)).area == 0


def test_nunataks_are_holes_and_small_holes_are_filled():
    m = np.zeros((100, 120), np.float32)
    m[10:90, 10:110] = 1
    m[20:40, 20:40] = 0  # 400 px = 0.04 km2: a nunatak
    m[60:63, 60:63] = 0  # 9 px: noise
    r = raster(m).chunk(50)
    kept = r.glacier.outlines(min_area_km2=0, min_hole_km2=0)
    filled = r.glacier.outlines(min_area_km2=0, min_hole_km2=0.01)
    assert len(kept) == len(filled) == 1
    assert len(kept.geometry[0].interiors) == 2 and len(filled.geometry[0].interiors) == 1
    assert filled.area_km2[0] == pytest.approx((80 * 100 - 400) * 100 / 1e6)


def test_small_glaciers_are_judged_whole_after_stitching():
    m = np.zeros((60, 60), np.float32)
    m[10:50, 25:35] = 1  # 400 px = 0.04 km2, cut by chunk borders into four pieces of 0.01
    r = raster(m).chunk(30)
    assert len(r.glacier.outlines(min_area_km2=0.03)) == 1
    assert len(r.glacier.outlines(min_area_km2=0.05)) == 0


def test_corner_contact_does_not_join_glaciers_in_any_chunking():
    m = np.zeros((40, 40), np.float32)
    m[10:20, 10:20] = 1
    m[20:30, 20:30] = 1  # touches the first only at the corner (20, 20), which is a chunk corner too
    for chunks in (20, 7, 40):
        assert len(raster(m).chunk(chunks).glacier.outlines(min_area_km2=0)) == 2


def test_mean_probability_and_threshold():
    p = np.zeros((50, 50), np.float32)
    p[5:25, 5:25] = 0.9
    p[5:25, 25:45] = 0.6
    r = raster(p).chunk(20)
    out = r.glacier.outlines(min_area_km2=0)
    assert len(out) == 1 and out.mean_probability[0] == pytest.approx(0.75, abs=1e-6)
    assert out.area_km2[0] == pytest.approx(800 * 100 / 1e6)
    assert r.glacier.outlines(min_area_km2=0, threshold=0.7).area_km2[0] == pytest.approx(400 * 100 / 1e6)


def test_simplification_is_bounded_by_half_a_pixel(blobs):
    full = blobs.glacier.outlines(min_area_km2=0)
    simple = blobs.glacier.outlines(min_area_km2=0, simplify=5.0)
    assert shapely.get_num_coordinates(simple.geometry.values).sum() < shapely.get_num_coordinates(full.geometry.values).sum()
    assert simple.is_valid.all()
    diff = shapely.union_all(simple.geometry.values).symmetric_difference(shapely.union_all(full.geometry.values))
    assert diff.area < 0.02 * full.area.sum()
    with pytest.raises(InvalidArgumentError, match="half a pixel"):
        blobs.glacier.outlines(simplify=6.0)


def test_labels_keep_ice_divides():
    lab = np.zeros((60, 80), np.int32)
    lab[10:50, 10:40] = 7
    lab[10:50, 40:70] = 9  # shares a border with 7: an ice divide
    lab[52:55, 10:13] = 7  # a detached part of glacier 7
    out = raster(lab).chunk(25).glacier.outlines(labels=True, min_area_km2=0, min_hole_km2=0)
    assert sorted(out.label) == [7, 9]
    seven = out.set_index("label").loc[7]
    assert seven.geometry.geom_type == "MultiPolygon" and seven.area_km2 == pytest.approx((1200 + 9) * 100 / 1e6)
    assert "mean_probability" not in out


def test_geographic_rasters_get_metric_areas():
    m = np.zeros((40, 40), np.float32)
    m[10:30, 10:30] = 1
    out = raster(m, crs="EPSG:4326", res=0.0001, origin=(10.0, 46.0)).glacier.outlines(min_area_km2=0)
    # 20 x 20 pixels of 0.0001 deg at 46 N: ~ (20 * 7.73 m) x (20 * 11.11 m)
    expected = (20 * 0.0001 * 111_320 * np.cos(np.radians(45.998))) * (20 * 0.0001 * 111_150) / 1e6
    assert out.crs.to_epsg() == 4326
    assert out.area_km2[0] == pytest.approx(expected, rel=0.01)


def test_raster_without_crs_is_refused():
    da = xr.DataArray(np.ones((10, 10), np.float32), dims=("y", "x"), coords={"y": np.arange(10.0)[::-1], "x": np.arange(10.0)})
    with pytest.raises(CRSError, match="write_crs"):
        da.glacier.outlines()
