"""Grid math: exact shapes, snapped bounds, pixel centres, UTM zones."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from glacierxr.geo import grid_from_bbox, utm_crs, xy_of


def test_utm_zones_both_hemispheres():
    assert utm_crs(86.9, 27.9).to_epsg() == 32645
    assert utm_crs(-73.2, -49.3).to_epsg() == 32718
    assert utm_crs(179.9, 10).to_epsg() == 32660
    assert utm_crs(-180, 10).to_epsg() == 32601


@settings(max_examples=60, deadline=None)
@given(
    lon=st.floats(-179, 178.9), lat=st.floats(-80, 80),
    dlon=st.floats(0.001, 0.3), dlat=st.floats(0.001, 0.3), res=st.sampled_from([10.0, 20.0, 30.0, 2.0]),
)
def test_grid_covers_bbox_with_whole_pixels(lon, lat, dlon, dlat, res):
    bbox = (lon, lat, lon + dlon, min(lat + dlat, 84))
    grid = grid_from_bbox(bbox, resolution=res)
    xmin, ymin, xmax, ymax = grid.bounds
    for v in grid.bounds:
        assert abs(v / res - round(v / res)) < 1e-9
    assert grid.shape == (round((ymax - ymin) / res), round((xmax - xmin) / res))
    # every corner of the bbox lies inside the grid
    x, y = xy_of(grid.crs, np.array([bbox[0], bbox[2], bbox[0], bbox[2]]), np.array([bbox[1], bbox[1], bbox[3], bbox[3]]))
    assert (x >= xmin - 1e-6).all() and (x <= xmax + 1e-6).all() and (y >= ymin - 1e-6).all() and (y <= ymax + 1e-6).all()
    assert np.allclose(np.diff(grid.x), res) and np.allclose(np.diff(grid.y), -res)
    assert grid.x[0] == xmin + res / 2 and grid.y[0] == ymax - res / 2


def test_explicit_crs_is_used():
    grid = grid_from_bbox((86.9, 27.9, 87.0, 28.0), resolution=30, crs="EPSG:32644")
    assert grid.epsg == 32644 and grid.resolution == 30
