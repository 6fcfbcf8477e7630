"""Alignment math of the direct-read path."""

from __future__ import annotations

from affine import Affine
from rasterio.enums import Resampling

from glacierxr.reader import alignment

DST = Affine(10, 0, 500000, 0, -10, 3100000)


def test_same_grid_offsets():
    assert alignment(Affine(10, 0, 499990, 0, -10, 3100030), 32645, DST, 32645, Resampling.bilinear) == (1, -3, -1)


def test_coarser_aligned_source_needs_nearest():
    src = Affine(20, 0, 499980, 0, -20, 3100040)
    assert alignment(src, 32645, DST, 32645, Resampling.nearest) == (2, -4, -2)
    assert alignment(src, 32645, DST, 32645, Resampling.bilinear) is None


def test_misaligned_or_other_crs_is_warped():
    assert alignment(Affine(10, 0, 500005, 0, -10, 3100000), 32645, DST, 32645, Resampling.nearest) is None
    assert alignment(Affine(10, 0, 500000, 0, -10, 3100000), 32644, DST, 32645, Resampling.nearest) is None
    assert alignment(Affine(15, 0, 500000, 0, -15, 3100000), 32645, DST, 32645, Resampling.nearest) is None
    assert alignment(Affine(5, 0, 500000, 0, -5, 3100000), 32645, DST, 32645, Resampling.nearest) is None
