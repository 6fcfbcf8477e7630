"""The hand-written NaN-skipping reductions equal NumPy's."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from glacierxr.cube import nanmean_last, nanmedian_last


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 7)),
              elements=st.one_of(st.just(np.nan), st.floats(-1, 2, width=32))))
def test_nanmedian_and_nanmean_equal_numpy(a):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_allclose(nanmedian_last(a), np.nanmedian(a, axis=-1), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(nanmean_last(a), np.nanmean(a, axis=-1), rtol=1e-5, atol=1e-6)
    assert nanmedian_last(a).dtype == np.float32
