"""Property tests (hypothesis) of the tiling math, the blend weights and the vectoriser."""

from __future__ import annotations

import math
import re

import dask
import numpy as np
import pytest
import shapely
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rasterio import features
from scipy import ndimage

from glacierxr.errors import InputShapeError
from glacierxr.tiling import aligned_chunks, blend_weights, check_tiling, ramp, window_starts
from glacierxr.vectorize import outlines

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: vectorising is ~100x slower per example than the window math
VECTOR_SETTINGS = settings(SETTINGS, max_examples=30)


@st.composite
def tilings(draw, max_n: int = 700):
    """(n, tile, overlap, stride): a valid window layout of an axis of length n."""
    tile = draw(st.integers(1, 96))
    overlap = draw(st.integers(0, tile // 2))
    n = draw(st.integers(1, max_n))
    return n, tile, overlap, tile - overlap


# ----------------------------------------------------------------------------- windows


@SETTINGS
@given(tilings())
def test_windows_cover_the_axis_minimally_and_start_inside_it(layout):
    n, tile, overlap, stride = layout
    starts = window_starts(n, tile, stride)
    assert starts[0] == 0 and (starts >= 0).all() and (starts < n).all()
    assert (np.diff(starts) == stride).all()  # neighbours share exactly `overlap` pixels
    covered = np.zeros(n, int)
    for s in starts:
        covered[s : s + tile] += 1
    assert (covered >= 1).all()
    assert starts[-1] + tile >= n  # the last window reaches the end (padded beyond it)
    if len(starts) > 1:
        assert starts[-2] + tile < n  # and no window is superfluous
    if overlap and len(starts) > 1:
        # every pixel shared by two neighbouring windows is covered at least twice
        for a in starts[:-1]:
            assert (covered[a + stride : min(a + tile, n)] >= 2).all()


@SETTINGS
@given(tilings(max_n=3000), st.integers(1, 4096))
def test_aligned_chunks_partition_the_axis_on_window_starts(layout, chunk):
    n, tile, overlap, stride = layout
    sizes = aligned_chunks(n, chunk, stride, tile)
    assert sum(sizes) == n and all(s > 0 for s in sizes)
    if len(sizes) > 1:
        assert all(s % stride == 0 and s >= tile for s in sizes[:-1])
        assert len(set(sizes[:-1])) == 1 and sizes[-1] <= sizes[0]
    bounds = np.cumsum((0, *sizes))
    assert all(b % stride == 0 for b in bounds[:-1])
    # a window starting in chunk i spills at most `overlap` pixels, into chunk i + 1 only (or past the end)
    for s in window_starts(n, tile, stride):
        i = int(np.searchsorted(bounds, s, side="right") - 1)
        end = int(bounds[i + 1])
        if end < n:  # (past the array's end the spill is dropped)
            assert s + tile - end <= overlap
        if i + 2 < len(bounds):
            assert s + tile <= bounds[i + 2] or bounds[i + 2] == n


@SETTINGS
@given(st.integers(1, 64), st.integers(-8, 96), st.integers(-4, 64))
def test_check_tiling_accepts_exactly_the_valid_layouts(output_stride, tile, overlap):
    valid = tile > 0 and tile % output_stride == 0 and 0 <= overlap <= tile // 2
    if valid:
        assert check_tiling(tile, overlap, output_stride) == tile - overlap
        return
    with pytest.raises(InputShapeError) as info:
        check_tiling(tile, overlap, output_stride)
    msg = str(info.value)
    if tile <= 0 or tile % output_stride:
        # the suggestions are valid tiles around the bad one
        lo, hi = (int(v) for v in re.search(r"use window=(\d+) or window=(\d+)", msg).groups())

        assert lo % output_stride == 0 and hi == lo + output_stride and lo > 0
        assert tile <= 0 or lo <= tile < hi or lo == output_stride
    else:
        assert f"overlap={overlap}" in msg and f"({tile // 2})" in msg


# ----------------------------------------------------------------------------- blend weights


@SETTINGS
@given(st.integers(1, 128).flatmap(lambda t: st.tuples(st.just(t), st.integers(0, t // 2))))
def test_ramp_is_positive_symmetric_and_one_inside(args):
    tile, overlap = args
    r = ramp(tile, overlap)
    assert r.shape == (tile,) and (r > 0).all() and (r <= 1).all()
    np.testing.assert_allclose(r, r[::-1], atol=1e-12)
    assert (r[overlap : tile - overlap] == 1).all()
    if overlap:
        assert (np.diff(r[:overlap]) > 0).all()  # rises monotonically across the overlap
    w = blend_weights(tile, overlap)
    assert w.dtype == np.float32 and w.shape == (tile, tile) and (w > 0).all()
    np.testing.assert_array_equal(w, w.T)
    np.testing.assert_array_equal(w, w[::-1, ::-1])
    np.testing.assert_allclose(w, np.outer(r, r), rtol=1e-6)


def _summed_weights(n: int, tile: int, overlap: int) -> tuple[np.ndarray, np.ndarray]:
    stride = tile - overlap
    r = ramp(tile, overlap)
    starts = window_starts(n, tile, stride)
    total = np.zeros(starts[-1] + tile)
    for s in starts:
        total[s : s + tile] += r
    return total[:n], starts


@SETTINGS
@given(tilings(max_n=400))
def test_overlapping_ramps_are_a_partition_of_unity(layout):
    n, tile, overlap, stride = layout
    total, starts = _summed_weights(n, tile, overlap)
    assert (total > 0).all()  # every pixel gets weight: the division is always defined
    # between the first window's rising edge and the last window's falling edge, exactly 1
    inner = slice(overlap, min(n, int(starts[-1]) + tile - overlap))
    np.testing.assert_allclose(total[inner], 1.0, atol=1e-12)


@SETTINGS
@given(st.integers(2, 48).flatmap(lambda t: st.tuples(st.just(t), st.integers(0, t // 2))),
       st.integers(1, 120), st.integers(1, 120), st.floats(-1e3, 1e3, allow_nan=False))
def test_normalised_blending_of_a_constant_is_the_constant(args, h, w, value):
    tile, overlap = args
    stride = tile - overlap
    weight = blend_weights(tile, overlap).astype(np.float64)
    ys, xs = window_starts(h, tile, stride), window_starts(w, tile, stride)
    num = np.zeros((ys[-1] + tile, xs[-1] + tile))
    den = np.zeros_like(num)
    for y in ys:
        for x in xs:
            num[y : y + tile, x : x + tile] += weight * value
            den[y : y + tile, x : x + tile] += weight
    assert (den[:h, :w] > 0).all()
    np.testing.assert_allclose(num[:h, :w] / den[:h, :w], value, rtol=1e-9, atol=1e-9)


@SETTINGS
@given(tilings(max_n=300), st.data())
def test_blending_never_leaves_the_range_of_the_windows(layout, data):
    n, tile, overlap, stride = layout
    r = ramp(tile, overlap)
    starts = window_starts(n, tile, stride)
    values = data.draw(arrays(np.float64, len(starts), elements=st.floats(0, 1)))
    num, den = np.zeros(starts[-1] + tile), np.zeros(starts[-1] + tile)
    for s, v in zip(starts, values, strict=True):
        num[s : s + tile] += r * v
        den[s : s + tile] += r
    blended = num[:n] / den[:n]
    assert (blended >= values.min() - 1e-12).all() and (blended <= values.max() + 1e-12).all()


# ----------------------------------------------------------------------------- vectorisation

PIXEL = 10.0


def _raster(mask: np.ndarray, chunks=None, dtype="float32") -> xr.DataArray:
    h, w = mask.shape
    x0, y0 = 500_000.0, 3_100_000.0
    da_ = xr.DataArray(
        mask.astype(dtype), dims=("y", "x"),
        coords={"y": y0 - PIXEL * (np.arange(h) + 0.5), "x": x0 + PIXEL * (np.arange(w) + 0.5)},
    ).rio.write_crs("EPSG:32645")
    return da_.chunk({"y": chunks[0], "x": chunks[1]}) if chunks else da_


def _exact(raster: xr.DataArray, threshold: float = 0.5):
    """Every glacier, every hole, no simplification; on one thread."""
    with dask.config.set(scheduler="synchronous"):
        return outlines(raster, threshold=threshold, min_area_km2=0, min_hole_km2=0, simplify=None)


masks = st.integers(2, 14).flatmap(
    lambda h: st.integers(2, 14).flatmap(lambda w: arrays(np.bool_, (h, w), elements=st.booleans())))


@VECTOR_SETTINGS
@given(masks)
def test_polygons_rasterise_back_to_the_mask(mask):
    raster = _raster(mask)
    gdf = _exact(raster)
    comp, n_comp = ndimage.label(mask, structure=[[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    assert len(gdf) == n_comp  # one polygon per 4-connected glacier
    assert gdf.geometry.is_valid.all() and (gdf.geometry.geom_type == "Polygon").all()
    back = features.rasterize(((g, 1) for g in gdf.geometry), out_shape=mask.shape, fill=0,
                              transform=raster.rio.transform(), dtype="uint8") if len(gdf) else np.zeros(mask.shape)
    np.testing.assert_array_equal(back.astype(bool), mask)
    # each polygon covers exactly its component: area = pixels x pixel area
    assert math.isclose(gdf["area_km2"].sum(), mask.sum() * PIXEL**2 / 1e6, rel_tol=1e-9, abs_tol=1e-12)
    np.testing.assert_allclose(gdf.geometry.area.to_numpy() / 1e6, gdf["area_km2"].to_numpy(), rtol=1e-9)
    sizes = np.sort(np.bincount(comp.ravel())[1:])[::-1]
    np.testing.assert_allclose(np.sort(gdf["area_km2"].to_numpy())[::-1], sizes * PIXEL**2 / 1e6, rtol=1e-9)
    assert list(gdf.columns) == ["geometry", "mean_probability", "area_km2"]  # with or without glaciers
    if len(gdf):
        np.testing.assert_allclose(gdf["mean_probability"], 1.0)
        assert (np.diff(gdf["area_km2"].to_numpy()) <= 0).all()  # sorted by decreasing area


@VECTOR_SETTINGS
@given(masks, st.data())
def test_outlines_do_not_depend_on_the_chunking(mask, data):
    h, w = mask.shape
    chunks = (data.draw(st.integers(1, h), label="chunk_y"), data.draw(st.integers(1, w), label="chunk_x"))
    whole = _exact(_raster(mask))
    chunked = _exact(_raster(mask, chunks=chunks))
    assert len(chunked) == len(whole)
    np.testing.assert_allclose(chunked["area_km2"], whole["area_km2"], rtol=1e-9)
    np.testing.assert_allclose(chunked["mean_probability"], whole["mean_probability"], rtol=1e-6)
    for a, b in zip(chunked.geometry, whole.geometry, strict=True):
        assert shapely.equals(a, b), (a.wkt, b.wkt)


@VECTOR_SETTINGS
@given(masks, st.floats(0.05, 0.95))
def test_threshold_and_mask_agree(mask, threshold):
    """A probability raster gives the polygons of its thresholded mask."""
    rng = np.random.default_rng(int(mask.sum()) + mask.size)
    prob = np.where(mask, rng.uniform(threshold, 1.0, mask.shape), rng.uniform(0.0, threshold, mask.shape))
    prob = np.where(prob >= threshold, prob, np.minimum(prob, np.nextafter(threshold, 0)))
    raster = _raster(prob >= threshold)
    expected = _exact(raster)
    got = _exact(raster.copy(data=prob.astype("float64")), threshold=threshold)
    got = got[[c for c in got.columns if c != "mean_probability"]]
    assert len(got) == len(expected)
    for a, b in zip(got.geometry, expected.geometry, strict=True):
        assert shapely.equals(a, b)
