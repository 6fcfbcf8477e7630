"""Splitting ice complexes into glaciers at ice divides (glacierxr.divides)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr

from glacierxr.divides import complexes_of, drainage_basins, split_glaciers
from glacierxr.errors import InvalidArgumentError

CRS = "EPSG:32632"
X0, Y0 = 600_000.0, 5_200_000.0


def dem_of(fn, width_m=8000.0, height_m=4000.0, res=10.0, dx=0.0):
    """A DEM DataArray on a 10 m lattice from ``fn(x, y)`` in metres from (X0, Y0)."""
    x = X0 + dx + np.arange(res / 2, width_m, res)
    y = Y0 + np.arange(height_m - res / 2, 0, -res)
    xx, yy = np.meshgrid(x - X0, y - Y0)
    return xr.DataArray(fn(xx, yy).astype(np.float32), dims=("y", "x"), coords={"y": y, "x": x}).rio.write_crs(CRS)


def ridge(xx, yy):
    """A ridge across x = 4000 m: ice west of it flows west, ice east of it flows east."""
    return 3000.0 - 0.15 * np.abs(xx - 4000.0) + 0.02 * np.abs(yy - 2000.0)


def box(x0, y0, x1, y1):
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def frame(*geoms, crs=CRS, **cols):
    return gpd.GeoDataFrame(cols, geometry=list(geoms), crs=crs)


def iou(a, b):
    return a.intersection(b).area / a.union(b).area


def test_a_ridge_splits_an_ice_mass_into_its_two_glaciers_along_the_divide():
    complexes = frame(box(1000, 1000, 7000, 3000), name=["mass"])
    out = split_glaciers(complexes, dem_of(ridge))
    assert len(out) == 2
    west, east = sorted(out.geometry, key=lambda g: g.centroid.x)
    assert iou(west, box(1000, 1000, 4000, 3000)) > 0.97
    assert iou(east, box(4000, 1000, 7000, 3000)) > 0.97
    assert list(out["name"]) == ["mass", "mass"] and out["complex_id"].nunique() == 1


def test_the_glaciers_partition_their_complex_exactly():
    complexes = frame(box(1000, 1000, 7000, 3000).difference(box(3000, 1800, 3400, 2200)))
    out = split_glaciers(complexes, dem_of(ridge))
    assert len(out) == 2
    union = shapely.union_all(out.geometry.to_numpy())
    assert union.symmetric_difference(complexes.geometry.iloc[0]).area < 1e-6
    a, b = out.geometry
    assert a.intersection(b).area < 1e-6
    assert all(g.geom_type == "Polygon" for g in out.geometry)


def test_a_closed_depression_is_no_outlet():
    def pit(xx, yy):  # one glacier flowing west, with a 60 m deep hollow in its middle
        return 3000.0 - 0.1 * (8000.0 - xx) * -1 - 60.0 * np.exp(-((xx - 4000) ** 2 + (yy - 2000) ** 2) / 300.0**2)

    ice = np.zeros((40, 80), bool)
    ice[10:30, 5:75] = True
    yy, xx = np.mgrid[0:40, 0:80] * 100.0
    labels = drainage_basins(ice, pit(xx, yy), min_cells=0, min_drop_m=40.0)
    assert labels.max() == 1 and (labels > 0).sum() == ice.sum()


def test_slivers_join_the_neighbour_they_share_the_longest_border_with():
    labels = np.zeros((20, 20), np.int32)
    labels[:, :10], labels[:, 10:] = 1, 2
    labels[0:3, 7:10] = 3  # a 9-cell sliver in 1's corner: 3 cells of border with 2, 6 with 1
    from glacierxr.divides import _merge_small

    out = _merge_small(labels, min_cells=10)
    assert out.max() == 2
    assert (out[labels == 3] == out[5, 0]).all() and out[5, 0] != out[5, 15]
    assert np.bincount(out.ravel())[1:].min() >= 10


def test_small_complexes_stay_whole_and_minimum_size_is_kept():
    tiny = frame(box(3900, 1900, 4100, 2100))  # 0.04 km² across the divide
    out = split_glaciers(tiny, dem_of(ridge), min_area_km2=0.1)
    assert len(out) == 1
    big = split_glaciers(frame(box(1000, 1000, 7000, 3000)), dem_of(ridge), min_area_km2=0.1)
    assert (big.area / 1e6 >= 0.1).all()


def test_the_split_does_not_depend_on_the_dem_window():
    """A tile's DEM and the merge's small DEM cube are different windows of one lattice."""
    complexes = frame(box(1000, 1000, 7000, 3000).union(box(3500, 3000, 4500, 3600)))
    a = split_glaciers(complexes, dem_of(ridge))
    b = split_glaciers(complexes, dem_of(ridge, width_m=7500, dx=200.0).isel(y=slice(10, None)))
    assert len(a) == len(b)
    for ga, gb in zip(a.geometry, b.geometry, strict=True):
        assert ga.symmetric_difference(gb).area < 1e-6


def test_a_geographic_complex_and_dem_work():
    dem = dem_of(ridge).rio.reproject("EPSG:4326")
    complexes = frame(box(1000, 1000, 7000, 3000)).to_crs("EPSG:4326")
    out = split_glaciers(complexes, dem)
    assert len(out) == 2 and out.crs.to_epsg() == 4326
    west, east = sorted(out.to_crs(CRS).geometry, key=lambda g: g.centroid.x)
    assert iou(west, box(1000, 1000, 4000, 3000)) > 0.95


def test_divides_of_a_previous_inventory_are_kept_and_new_ice_joins_its_neighbour():
    old = frame(box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000), box(2000, 0, 3000, 500), glac=["a", "b", "c"])
    grown = shapely.union_all([*old.geometry, box(2000, 500, 3000, 700)])  # c grew north: new ice
    far = box(5000, 0, 5500, 600)  # a new glacier of its own
    out = split_glaciers(frame(grown, far), divides=old, min_area_km2=0.1)
    assert len(out) == 4
    by = {round(g.centroid.x - X0): g for g in out.geometry}
    assert iou(by[500], old.geometry[0]) == pytest.approx(1.0)
    assert iou(by[1500], old.geometry[1]) == pytest.approx(1.0)
    c = next(g for g in out.geometry if g.intersects(old.geometry[2].centroid))
    assert c.area == pytest.approx(1000 * 700)  # c and the new ice north of it, whose longest border is with c
    assert out["complex_id"].nunique() == 2


def test_complexes_of_gives_one_row_per_mass():
    out = split_glaciers(frame(box(1000, 1000, 7000, 3000), box(100, 100, 600, 600)), dem_of(ridge))
    out["area_km2"] = out.area / 1e6
    cx = complexes_of(out)
    assert len(cx) == 2 and sorted(cx["n_glaciers"]) == [1, 2]
    assert cx["area_km2"].sum() == pytest.approx(6 * 2 + 0.25)


def test_bad_options_say_what_to_pass():
    with pytest.raises(InvalidArgumentError, match="dem= .* or divides="):
        split_glaciers(frame(box(0, 0, 100, 100)))
    with pytest.raises(InvalidArgumentError, match="min_area_km2"):
        split_glaciers(frame(box(0, 0, 100, 100)), dem_of(ridge), min_area_km2=-1)


def test_outlines_and_inventory_split_when_asked():
    import glacierxr as gx
    from glacierxr.vectorize import outlines

    dem = dem_of(ridge)
    x, y = dem["x"].values - X0, dem["y"].values - Y0
    mask = ((x[None] > 1000) & (x[None] < 7000) & (y[:, None] > 1000) & (y[:, None] < 3000)).astype(np.float32)
    prob = dem.copy(data=mask)
    masses = outlines(prob)
    glaciers = outlines(prob, dem=dem)
    assert len(masses) == 1 and len(glaciers) == 2
    assert glaciers["complex_id"].nunique() == 1 and glaciers["area_km2"].sum() == pytest.approx(12.0, rel=1e-3)
    inv = gx.inventory(masses, dem, split=True)
    assert len(inv) == 2 and "complex_id" in inv and inv["area_km2"].sum() == pytest.approx(12.0, rel=1e-3)
    assert len(gx.inventory(masses, dem)) == 1
