"""The cube's per-chunk composite and its sorting-network median equal plain NumPy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from glacierxr.composite import ChunkSpec, composite_chunk, nanmedian_first, sort_network


def _reference(stored, spec):
    """The kernel's job done the obvious way: whole arrays, np.nanmedian / np.nanmean."""
    phys = np.where(stored == spec.nodata[..., None, None], np.nan,
                    stored * spec.scale[..., None, None] + spec.offset[..., None, None])
    data = phys[:, list(spec.data_bands)]
    if spec.mask_band is not None:
        q = phys[:, spec.mask_band]
        bad = np.isnan(q) | np.isin(q, spec.mask_values)
        for bit in spec.mask_bits:
            bad |= (np.nan_to_num(q).astype(np.uint32) >> bit) & 1 == 1
        data = np.where(bad[:, None], np.nan, data)
    days = np.asarray(spec.days)
    per_day = []
    for day in np.unique(days):
        merged = data[days == day][0].copy()
        for later in data[days == day][1:]:
            merged = np.where(np.isnan(merged), later, merged)
        per_day.append(merged)
    per_day = np.asarray(per_day)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if spec.method == "median":
            return np.nanmedian(per_day, axis=0).astype(np.float32)
        if spec.method == "mean":
            return np.nanmean(per_day.astype(np.float64), axis=0).astype(np.float32)
    first = per_day[0].copy()
    for d in per_day[1:]:
        first = np.where(np.isnan(first), d, first)
    return first


@pytest.mark.parametrize("method", ["median", "mean", "first"])
@pytest.mark.parametrize("mask", ["classes", "bits", None])
@pytest.mark.parametrize("days", [(0, 1, 2, 3, 4), (0, 0, 1, 2, 2, 2, 3), (5,), (1, 1)])
def test_composite_chunk_equals_the_plain_numpy_composite(method, mask, days):
    rng = np.random.default_rng(len(days))
    t, h, w = len(days), 45, 70  # 45 rows: more than one strip, the last one short
    stored = rng.integers(0, 12, (t, 3, h, w)).astype(np.float32)
    stored[rng.random(stored.shape) < 0.15] = np.nan  # nothing read there
    spec = ChunkSpec(
        scale=rng.choice([1e-4, 2.0, 1.0], (t, 3)).astype(np.float32),
        offset=rng.choice([0.0, -0.1], (t, 3)).astype(np.float32),
        nodata=rng.choice([0.0, np.nan], (t, 3)).astype(np.float32),
        days=days, data_bands=(2, 0) if mask else (0, 1, 2),
        mask_band=1 if mask else None,
        mask_values=(3.0, 8.0) if mask == "classes" else (),
        mask_bits=(1, 3) if mask == "bits" else (),
        method=method,
    )
    if mask:
        spec = ChunkSpec(**{**spec.__dict__, "scale": np.where(np.arange(3) == 1, 1, spec.scale).astype(np.float32),
                            "offset": np.where(np.arange(3) == 1, 0, spec.offset).astype(np.float32)})
    blocks = [[stored[i, b][None, None] for b in range(3)] for i in range(t)]
    got = composite_chunk(blocks, spec)
    want = _reference(stored, spec)
    assert got.dtype == np.float32 and got.shape == want.shape
    if method == "mean":
        np.testing.assert_allclose(got, want, rtol=1e-6)
    else:
        np.testing.assert_array_equal(got, want)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 9), st.integers(1, 5), st.integers(1, 4)),
              elements=st.one_of(st.just(np.nan), st.just(np.inf), st.floats(-1, 2, width=32))))
def test_network_median_equals_numpy(a):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_array_equal(nanmedian_first(a), np.nanmedian(a, axis=0).astype(np.float32))


@pytest.mark.parametrize("n", range(1, 17))
def test_sort_network_sorts_every_zero_one_input(n):
    """The 0-1 principle: a comparator network sorts every input iff it sorts every 0/1 input."""
    pairs = sort_network(n)
    bits = (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1
    for i, j in pairs:
        lo, hi = np.minimum(bits[:, i], bits[:, j]), np.maximum(bits[:, i], bits[:, j])
        bits[:, i], bits[:, j] = lo, hi
    assert (np.diff(bits, axis=1) >= 0).all()
