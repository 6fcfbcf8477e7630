"""RGI-style inventory on synthetic geometry and DEMs whose answers are known analytically."""

from __future__ import annotations

import math

import dask.array as dsa
import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Point, Polygon, box

import glacierxr  # noqa: F401  (registers rio via rioxarray)
from glacierxr.errors import CRSError, GlacierxrError, InputShapeError, InvalidArgumentError, StoreExistsError
from glacierxr.inventory import (
    INVENTORY_COLUMNS,
    SHAPEFILE_NAMES,
    InventoryNotFoundError,
    aspect_sector,
    compare_inventories,
    glims_id,
    inventory,
    read_inventory,
    write_inventory,
)

UTM32 = "EPSG:32632"  # central meridian 9 E
LAT0 = 46.8


def circ_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def utm_of(lon: float, lat: float) -> tuple[float, float]:
    return Transformer.from_crs("EPSG:4326", UTM32, always_xy=True).transform(lon, lat)


def plane(e0: float, n0: float, ge: float, gn: float, z0: float = 3000.0):
    """z(E, N) of a plane in UTM metres through (e0, n0, z0) with gradients ge, gn (m/m)."""
    return lambda e, n: z0 + ge * (e - e0) + gn * (n - n0)


def raster(z: np.ndarray, xs: np.ndarray, ys: np.ndarray, crs: str) -> xr.DataArray:
    da = xr.DataArray(z, dims=("y", "x"), coords={"y": ys, "x": xs}, name="elevation")
    return da.rio.write_crs(crs)


def utm_dem(f, e0: float, n0: float, *, res: float = 30.0, half: int = 100) -> xr.DataArray:
    xs = e0 + (np.arange(-half, half) + 0.5) * res
    ys = n0 - (np.arange(-half, half) + 0.5) * res
    e, n = np.meshgrid(xs, ys)
    return raster(f(e, n).astype("float32"), xs, ys, UTM32)


def geo_dem(f, lon0: float, lat0: float, *, dlon: float = 0.0004, dlat: float = 0.0003, half: int = 130):
    """The same surface sampled on a geographic grid (pixel centres transformed to UTM)."""
    lons = lon0 + (np.arange(-half, half) + 0.5) * dlon
    lats = lat0 - (np.arange(-half, half) + 0.5) * dlat
    lon, lat = np.meshgrid(lons, lats)
    e, n = Transformer.from_crs("EPSG:4326", UTM32, always_xy=True).transform(lon, lat)
    return raster(f(e, n).astype("float64"), lons, lats, "EPSG:4326")


def disk(e0: float, n0: float, r: float, crs: str = UTM32) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"name": ["g"]}, geometry=[Point(e0, n0).buffer(r, 256)], crs=crs)


GE, GN = -0.4, -0.1  # the surface falls to the east-north-east
SLOPE = math.degrees(math.atan(math.hypot(GE, GN)))  # 22.38 deg
ASPECT = math.degrees(math.atan2(-GE, -GN)) % 360  # 75.96 deg (downslope azimuth)


@pytest.fixture(scope="module")
def at_cm():
    """A tilted plane on the UTM 32 central meridian (grid north = true north)."""
    e0, n0 = utm_of(9.0, LAT0)
    f = plane(e0, n0, GE, GN)
    return e0, n0, f


# ---------------------------------------------------------------------------- slope and aspect


def test_tilted_plane_in_utm_has_the_known_slope_and_aspect(at_cm):
    e0, n0, f = at_cm
    inv = inventory(disk(e0, n0, 2000), utm_dem(f, e0, n0))
    row = inv.iloc[0]
    assert row.slope_deg == pytest.approx(SLOPE, abs=0.05)
    assert circ_diff(row.aspect_deg, ASPECT) < 0.05
    assert row.aspect_sec == 3  # E
    assert row.valid_dem_frac == 1.0


def test_same_plane_on_a_geographic_grid_gives_the_same_slope(at_cm):
    """dx = N cos(lat) dlon per row: without it the slope of this plane would be ~6 deg off."""
    e0, n0, f = at_cm
    dem = geo_dem(f, 9.0, LAT0)
    inv = inventory(disk(e0, n0, 2000), dem)
    assert inv.slope_deg.iloc[0] == pytest.approx(SLOPE, abs=0.1)  # brief: 0.5 deg; we hold 0.1
    assert circ_diff(inv.aspect_deg.iloc[0], ASPECT) < 0.2
    # the naive alternative (isotropic metres, no cos(lat)) is far off: the test is sensitive
    z = dem.values
    metres = 6371000 * math.radians(0.0003)
    gy, gx = np.gradient(z, metres, metres * 0.0004 / 0.0003)  # rows: dlat, columns: dlon (no cos)
    naive = np.degrees(np.arctan(np.hypot(gx, gy)))[100:160, 100:160].mean()
    assert abs(naive - SLOPE) > 3.0


def test_utm_aspect_is_turned_to_true_north_off_the_central_meridian():
    """At 11.5 E, UTM 32 grid north is ~1.8 deg off true north; the geographic DEM agrees."""
    e0, n0 = utm_of(11.5, LAT0)
    f = plane(e0, n0, GE, GN)
    utm = inventory(disk(e0, n0, 1500), utm_dem(f, e0, n0)).iloc[0]
    geo = inventory(disk(e0, n0, 1500), geo_dem(f, 11.5, LAT0, half=100)).iloc[0]
    assert circ_diff(utm.aspect_deg, geo.aspect_deg) < 0.2
    assert circ_diff(utm.aspect_deg, ASPECT) > 1.0  # the correction is real
    assert utm.slope_deg == pytest.approx(geo.slope_deg, abs=0.1)


def test_aspect_mean_is_circular_across_north():
    """Two halves facing 350 and 10 deg average to 0 deg (a naive mean would say 180)."""
    e0, n0 = utm_of(9.0, LAT0)
    s = 0.3

    def f(e, n):
        a = np.where(e < e0, math.radians(350), math.radians(10))
        return 3000 - s * ((e - e0) * np.sin(a) + (n - n0) * np.cos(a))

    dem = utm_dem(f, e0, n0)
    for how in ("slope_vector", "unit_vector"):
        row = inventory(disk(e0, n0, 2000), dem, aspect_mean=how).iloc[0]
        assert circ_diff(row.aspect_deg, 0.0) < 0.5, how
        assert row.aspect_sec == 1
        assert row.slope_deg == pytest.approx(math.degrees(math.atan(s)), abs=0.2)


def test_slope_vector_mean_lets_steep_pixels_dominate():
    """West half steep facing 300 deg, east half gentle facing 60: unit mean 0, vector mean ~ W."""
    e0, n0 = utm_of(9.0, LAT0)

    def f(e, n):
        west = e < e0
        a = np.where(west, math.radians(300), math.radians(60))
        s = np.where(west, 0.5, 0.05)
        return 3000 - s * ((e - e0) * np.sin(a) + (n - n0) * np.cos(a))

    dem = utm_dem(f, e0, n0)
    g = gpd.GeoDataFrame(
        geometry=[box(e0 - 1500, n0 - 1500, e0 - 60, n0 + 1500), box(e0 + 60, n0 - 1500, e0 + 1500, n0 + 1500)],
        crs=UTM32,
    )
    g = gpd.GeoDataFrame(geometry=[g.union_all()], crs=UTM32)
    unit = inventory(g, dem, aspect_mean="unit_vector").aspect_deg.iloc[0]
    vec = inventory(g, dem, aspect_mean="slope_vector").aspect_deg.iloc[0]
    assert circ_diff(unit, 0.0) < 1.0
    expected = (
        math.degrees(
            math.atan2(
                0.5 * math.sin(math.radians(300)) + 0.05 * math.sin(math.radians(60)),
                0.5 * math.cos(math.radians(300)) + 0.05 * math.cos(math.radians(60)),
            )
        )
        % 360
    )
    assert circ_diff(vec, expected) < 1.0


@pytest.mark.parametrize(
    ("aspect", "sector"),
    [
        (0.0, 1),
        (359.99, 1),
        (337.5, 1),
        (22.4999, 1),
        (22.5, 2),
        (67.4999, 2),
        (67.5, 3),
        (112.5, 4),
        (157.5, 5),
        (180.0, 5),
        (202.5, 6),
        (247.5, 7),
        (270.0, 7),
        (292.5, 8),
        (337.4999, 8),
        (360.0, 1),
    ],
)
def test_aspect_sector_boundaries(aspect, sector):
    assert aspect_sector(aspect) == sector


def test_aspect_sector_array_and_undefined():
    np.testing.assert_array_equal(aspect_sector(np.array([np.nan, 45.0, 225.0])), [0, 2, 6])


# ---------------------------------------------------------------------------- elevations


def test_zmin_zmax_zmed_zmean_on_a_known_ramp():
    """z = 1000 + 0.1 E on a 30 m grid; a rectangle on pixel edges holds columns 10..29."""
    res, x0, y0 = 30.0, 500000.0, 5180000.0
    xs = x0 + (np.arange(60) + 0.5) * res
    ys = y0 - (np.arange(40) + 0.5) * res
    e, _ = np.meshgrid(xs, ys)
    dem = raster((1000 + 0.1 * (e - x0)).astype("float32"), xs, ys, UTM32)
    g = gpd.GeoDataFrame(geometry=[box(x0 + 10 * res, y0 - 30 * res, x0 + 30 * res, y0 - 10 * res)], crs=UTM32)
    row = inventory(g, dem).iloc[0]
    lo, hi = 1000 + 0.1 * 10.5 * res, 1000 + 0.1 * 29.5 * res
    assert row.zmin_m == pytest.approx(lo, abs=1e-3)
    assert row.zmax_m == pytest.approx(hi, abs=1e-3)
    assert row.zmed_m == pytest.approx((lo + hi) / 2, abs=1e-3)
    assert row.zmean_m == pytest.approx((lo + hi) / 2, abs=1e-3)
    assert row.slope_deg == pytest.approx(math.degrees(math.atan(0.1 * 0.9996)), abs=0.01)
    assert circ_diff(row.aspect_deg, 270.0) < 0.01 and row.aspect_sec == 7
    # terminus: lowest pixel on the outline = the west edge, middle of the tied column
    tx, ty = Transformer.from_crs("EPSG:4326", UTM32, always_xy=True).transform(row.termlon, row.termlat)
    assert tx == pytest.approx(x0 + 10.5 * res, abs=0.01)
    assert y0 - 30 * res < ty < y0 - 10 * res and abs(ty - (y0 - 20 * res)) <= res


def test_nunatak_hole_is_excluded_and_area_subtracted():
    res, x0, y0 = 30.0, 500000.0, 5180000.0
    xs = x0 + (np.arange(80) + 0.5) * res
    ys = y0 - (np.arange(80) + 0.5) * res
    e, n = np.meshgrid(xs, ys)
    z = 2000 + 0.05 * (e - x0)
    nunatak = (np.abs(e - (x0 + 1200)) < 250) & (np.abs(n - (y0 - 1200)) < 250)
    z = np.where(nunatak, 5000.0, z)
    dem = raster(z.astype("float32"), xs, ys, UTM32)
    shell = box(x0 + 300, y0 - 2100, x0 + 2100, y0 - 300)
    hole = box(x0 + 900, y0 - 1500, x0 + 1500, y0 - 900)
    g = gpd.GeoDataFrame(geometry=[Polygon(shell.exterior, [hole.exterior])], crs=UTM32)
    row = inventory(g, dem).iloc[0]
    assert row.zmax_m < 2200  # the 5000 m nunatak is not glacier
    k2 = 0.9996**2  # UTM scale at the central meridian: ground area = map area / k^2
    assert row.area_km2 == pytest.approx((1.8**2 - 0.6**2) / k2, rel=2e-4)
    assert row.perimeter_km == pytest.approx((4 * 1.8 + 4 * 0.6) / 0.9996, rel=2e-4)


def test_missing_values_are_ignored_int16_without_nodata():
    e0, n0 = utm_of(9.0, LAT0)
    f = plane(e0, n0, GE, GN)
    dem = utm_dem(f, e0, n0)
    z = np.round(dem.values).astype("int16")
    z[90:110, 90:110] = -32768
    z[40:45, 40:45] = -9999
    dem16 = dem.copy(data=z)
    assert dem16.rio.nodata is None
    row = inventory(disk(e0, n0, 2000), dem16).iloc[0]
    assert 0.9 < row.valid_dem_frac < 1.0
    assert row.zmin_m > 2000
    assert row.slope_deg == pytest.approx(SLOPE, abs=0.1)


def test_declared_nodata_is_ignored():
    e0, n0 = utm_of(9.0, LAT0)
    dem = utm_dem(plane(e0, n0, GE, GN), e0, n0)
    z = dem.values.copy()
    z[95:105, :] = 7777.0
    dem = dem.copy(data=z).rio.write_nodata(7777.0)
    row = inventory(disk(e0, n0, 2000), dem).iloc[0]
    assert row.zmax_m < 7000 and row.valid_dem_frac < 1.0


def test_scale_factor_left_in_attrs_is_applied():
    """open_rasterio(mask_and_scale=False) leaves scale_factor/add_offset as attributes."""
    e0, n0 = utm_of(9.0, LAT0)
    dem = utm_dem(plane(e0, n0, GE, GN), e0, n0)
    packed = dem.copy(data=np.round((dem.values - 1000.0) * 10).astype("int32"))
    packed.attrs.update(scale_factor=0.1, add_offset=1000.0)
    a = inventory(disk(e0, n0, 1000), dem).iloc[0]
    b = inventory(disk(e0, n0, 1000), packed).iloc[0]
    assert b.zmed_m == pytest.approx(a.zmed_m, abs=0.06) and b.slope_deg == pytest.approx(a.slope_deg, abs=0.01)


def test_tiny_glacier_uses_coverage_weights():
    """A 40 x 40 m glacier on a 30 m DEM has < 10 pixel centres; its mean is the plane at its centre."""
    e0, n0 = utm_of(9.0, LAT0)
    f = plane(e0, n0, GE, GN)
    dem = utm_dem(f, e0, n0)
    cx, cy = e0 + 7.0, n0 - 11.0  # off the pixel centres on purpose
    g = gpd.GeoDataFrame(
        geometry=[box(cx - 20, cy - 20, cx + 20, cy + 20), box(cx + 1, cy + 1, cx + 9, cy + 9)], crs=UTM32
    )
    inv = inventory(g, dem)
    assert inv.zmean_m.notna().all() and inv.slope_deg.notna().all()
    assert inv.zmean_m.iloc[0] == pytest.approx(float(f(cx, cy)), abs=0.5 * 30 * 0.42)
    assert inv.slope_deg.iloc[1] == pytest.approx(SLOPE, abs=0.05)  # no pixel centre inside at all
    assert inv.zmin_m.iloc[0] <= inv.zmed_m.iloc[0] <= inv.zmax_m.iloc[0]


def test_dask_dem_is_read_one_window_at_a_time():
    """A 6.4 GB lazy DEM: only the chunks under the glacier are computed."""
    e0, n0 = utm_of(9.0, LAT0)
    res, size = 30.0, 40_000
    xs = e0 + (np.arange(size) - size // 2 + 0.5) * res
    ys = n0 - (np.arange(size) - size // 2 + 0.5) * res
    calls: list[tuple[int, int]] = []

    def block(block_info=None):
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        calls.append((r1 - r0, c1 - c0))
        e, n = np.meshgrid(xs[c0:c1], ys[r0:r1])
        return (3000 + GE * (e - e0) + GN * (n - n0)).astype("float32")

    arr = dsa.map_blocks(block, dtype="float32", chunks=((2048,) * 19 + (size - 19 * 2048,),) * 2)
    dem = raster(arr, xs, ys, UTM32)
    row = inventory(disk(e0, n0, 1500), dem).iloc[0]
    assert row.slope_deg == pytest.approx(SLOPE, abs=0.05)
    assert 0 < len(calls) <= 4  # a 3 km glacier touches at most 4 chunks of 61 km


def test_south_up_dem_gives_the_same_answer(at_cm):
    e0, n0, f = at_cm
    dem = utm_dem(f, e0, n0)
    a = inventory(disk(e0, n0, 1500), dem).iloc[0]
    b = inventory(disk(e0, n0, 1500), dem.isel(y=slice(None, None, -1))).iloc[0]
    for c in ("zmin_m", "zmax_m", "zmed_m", "zmean_m", "slope_deg", "aspect_deg", "termlon", "termlat"):
        assert a[c] == pytest.approx(b[c], abs=1e-6), c


def test_outlines_in_another_crs_give_the_same_answer(at_cm):
    e0, n0, f = at_cm
    dem = utm_dem(f, e0, n0)
    g = disk(e0, n0, 1500)
    a = inventory(g, dem).iloc[0]
    b = inventory(g.to_crs("EPSG:3035"), dem).iloc[0]
    c = inventory(g.to_crs("EPSG:4326"), dem).iloc[0]
    for col in ("area_km2", "zmin_m", "zmed_m", "slope_deg", "aspect_deg"):
        assert a[col] == pytest.approx(b[col], rel=1e-4) and a[col] == pytest.approx(c[col], rel=1e-4), col


# ---------------------------------------------------------------------------- geometry attributes


def test_columns_ids_dates_and_extra_columns(at_cm):
    e0, n0, f = at_cm
    g = disk(e0, n0, 1000)
    g["area_km2"] = -1.0  # replaced, not duplicated
    inv = inventory(g, utm_dem(f, e0, n0), date="2023-08-15", dem_source="COPDEM30")
    assert list(inv.columns) == [*INVENTORY_COLUMNS, "name", "geometry"]
    assert inv.crs == g.crs and inv.index.equals(g.index)
    row = inv.iloc[0]
    assert row.src_date == "2023-08-15T00:00:00" and row.dem_source == "COPDEM30"
    assert row.glac_id == glims_id(9.0, LAT0) == "G009000E46800N"
    assert row.cenlon == pytest.approx(9.0, abs=1e-3) and row.cenlat == pytest.approx(LAT0, abs=1e-3)
    assert row.area_km2 == pytest.approx(math.pi / 0.9996**2, rel=1e-3)
    assert row.perimeter_km == pytest.approx(2 * math.pi / 0.9996, rel=1e-3)
    assert row["name"] == "g"


def test_multipolygon_area_is_the_sum(at_cm):
    e0, n0, f = at_cm
    a = box(e0 - 1000, n0 - 500, e0, n0)
    b = box(e0 + 200, n0, e0 + 700, n0 + 500)
    inv = inventory(gpd.GeoDataFrame(geometry=[MultiPolygon([a, b]), a, b], crs=UTM32), utm_dem(f, e0, n0))
    assert inv.area_km2.iloc[0] == pytest.approx(inv.area_km2.iloc[1] + inv.area_km2.iloc[2], rel=1e-9)


def test_invalid_bow_tie_outline_is_repaired(at_cm):
    e0, n0, f = at_cm
    tie = Polygon([(e0 - 500, n0 - 500), (e0 + 500, n0 + 500), (e0 + 500, n0 - 500), (e0 - 500, n0 + 500)])
    assert not tie.is_valid
    row = inventory(gpd.GeoDataFrame(geometry=[tie], crs=UTM32), utm_dem(f, e0, n0)).iloc[0]
    assert row.area_km2 == pytest.approx(0.5 / 0.9996**2, rel=1e-3)  # two triangles
    assert np.isfinite([row.zmin_m, row.slope_deg, row.lmax_m, row.cenlon]).all()


@pytest.mark.parametrize(
    ("lon", "lat", "expected"),
    [
        (10.7584, 46.8003, "G010758E46800N"),  # Hintereisferner in RGI 6
        (-146.823, 63.689, "G213177E63689N"),  # RGI60-01.00001: GLIMS writes west as 0..360 east
        (-73.5, -49.3664, "G286500E49366S"),  # southern hemisphere
        (0.0, 0.0, "G000000E00000N"),
        (179.9999, 0.0004, "G180000E00000N"),
        (-0.0001, -0.0004, "G000000E00000S"),
    ],
)
def test_glims_id_format(lon, lat, expected):
    assert glims_id(lon, lat) == expected


def test_lmax_of_a_straight_and_of_a_bent_glacier():
    e0, n0 = utm_of(9.0, LAT0)
    f = plane(e0, n0, -0.2, 0.0)  # falls to the east
    dem = utm_dem(f, e0, n0, half=120)
    straight = box(e0 - 1500, n0 - 150, e0 + 1500, n0 + 150)
    row = inventory(gpd.GeoDataFrame(geometry=[straight], crs=UTM32), dem).iloc[0]
    assert row.lmax_m == pytest.approx(math.hypot(3000, 150), rel=0.03)
    # an L: a 2.5 km west-east arm, then a 2 km arm to the north where the terminus is; the
    # longest in-glacier path goes round the inner corner of the bend
    dem = utm_dem(plane(e0, n0, -0.2, -0.2), e0, n0, half=120)
    arm = box(e0 - 1500, n0 - 150, e0 + 1000, n0 + 150).union(box(e0 + 700, n0 - 150, e0 + 1000, n0 + 2000))
    row = inventory(gpd.GeoDataFrame(geometry=[arm], crs=UTM32), dem).iloc[0]
    round_the_bend = math.hypot(150, 1850) + math.hypot(2200, 300)  # top middle -> inner corner -> far corner
    straight_line = math.hypot(2350, 2150)
    assert row.lmax_m > 1.2 * straight_line
    assert row.lmax_m == pytest.approx(round_the_bend, rel=0.05)


def test_probability_mean_on_another_grid(at_cm):
    e0, n0, f = at_cm
    xs = e0 - 3000 + (np.arange(600) + 0.5) * 10.0
    ys = n0 + 3000 - (np.arange(600) + 0.5) * 10.0
    e, _ = np.meshgrid(xs, ys)
    prob = raster(np.where(e < e0, 0.9, 0.5).astype("float32"), xs, ys, UTM32).to_dataset(name="p")["p"]
    prob = prob.rio.reproject("EPSG:3035")
    g = gpd.GeoDataFrame(
        geometry=[box(e0 - 1500, n0 - 500, e0 - 500, n0 + 500), box(e0 - 500, n0 - 500, e0 + 500, n0 + 500)], crs=UTM32
    )
    inv = inventory(g, utm_dem(f, e0, n0), probability=prob)
    assert inv.mean_probability.iloc[0] == pytest.approx(0.9, abs=1e-3)
    assert inv.mean_probability.iloc[1] == pytest.approx(0.7, abs=0.02)


def test_glacier_off_the_dem_gets_nan_not_an_error(at_cm):
    e0, n0, f = at_cm
    g = gpd.GeoDataFrame(geometry=[Point(e0, n0).buffer(500), Point(e0 + 50_000, n0).buffer(500)], crs=UTM32)
    inv = inventory(g, utm_dem(f, e0, n0))
    assert inv.zmin_m.notna().iloc[0] and np.isnan(inv.zmin_m.iloc[1]) and inv.valid_dem_frac.iloc[1] == 0
    assert inv.aspect_sec.iloc[1] == 0 and np.isfinite(inv.lmax_m.iloc[1]) and inv.area_km2.iloc[1] > 0


def test_empty_outlines_give_an_empty_inventory(at_cm):
    e0, n0, f = at_cm
    inv = inventory(gpd.GeoDataFrame(geometry=[], crs=UTM32), utm_dem(f, e0, n0))
    assert len(inv) == 0 and set(INVENTORY_COLUMNS) <= set(inv.columns)


# ---------------------------------------------------------------------------- errors


def test_no_overlap_names_both_bounds(at_cm):
    e0, n0, f = at_cm
    far = gpd.GeoDataFrame(geometry=[Point(e0 + 100_000, n0).buffer(500)], crs=UTM32)
    with pytest.raises(InvalidArgumentError, match="do not overlap") as err:
        inventory(far, utm_dem(f, e0, n0))
    assert "outlines bounds" in str(err.value) and "DEM bounds" in str(err.value)
    assert isinstance(err.value, GlacierxrError) and isinstance(err.value, ValueError)


def test_missing_crs_is_an_error(at_cm):
    e0, n0, f = at_cm
    dem = utm_dem(f, e0, n0)
    g = disk(e0, n0, 500)
    with pytest.raises(CRSError, match="outlines have no CRS"):
        inventory(gpd.GeoDataFrame(geometry=list(g.geometry)), dem)
    with pytest.raises(CRSError, match="dem has no CRS"):
        inventory(g, dem.drop_vars("spatial_ref"))
    with pytest.raises(CRSError, match="probability has no CRS"):
        inventory(g, dem, probability=dem.drop_vars("spatial_ref"))


def test_bad_arguments_are_explained(at_cm):
    e0, n0, f = at_cm
    dem = utm_dem(f, e0, n0)
    g = disk(e0, n0, 500)
    with pytest.raises(InputShapeError, match="isel"):
        inventory(g, xr.concat([dem, dem], dim="band"))
    with pytest.raises(InvalidArgumentError, match="Polygon"):
        inventory(gpd.GeoDataFrame(geometry=[Point(e0, n0)], crs=UTM32), dem)
    with pytest.raises(InvalidArgumentError, match="date"):
        inventory(g, dem, date="late summer")
    with pytest.raises(InvalidArgumentError, match="aspect_mean"):
        inventory(g, dem, aspect_mean="mean")
    with pytest.raises(InvalidArgumentError, match="DataArray"):
        inventory(g, dem.values)
    bent = dem.assign_coords(x=dem.x.values + np.linspace(0, 5, dem.sizes["x"]) ** 2)
    with pytest.raises(InputShapeError, match="irregular"):
        inventory(g, bent)
    with pytest.raises(InputShapeError, match="spatial dimensions"):
        inventory(g, dem.rename(x="col", y="row"))
    # a single band dimension is fine
    assert len(inventory(g, dem.expand_dims(band=[1]))) == 1


# ---------------------------------------------------------------------------- comparison


def _frame(geoms, crs="EPSG:3035", index=None, **cols):
    return gpd.GeoDataFrame(cols, geometry=geoms, crs=crs, index=index)


X0, Y0 = 4_300_000.0, 2_650_000.0  # the Alps in EPSG:3035 (an equal-area CRS: areas are exact)


@pytest.fixture
def pair():
    ref = _frame(
        [
            box(X0, Y0, X0 + 1000, Y0 + 1000),
            box(X0 + 3000, Y0, X0 + 3500, Y0 + 500),
            box(X0 + 6000, Y0, X0 + 6200, Y0 + 200),
        ],
        rgi_id=["A", "B", "C"],
    )
    new = _frame(
        [
            box(X0 + 100, Y0, X0 + 1100, Y0 + 1000),
            box(X0 + 3000, Y0, X0 + 3500, Y0 + 250),
            box(X0 + 9000, Y0, X0 + 9100, Y0 + 100),
        ],
        index=[10, 11, 12],
    )
    return new, ref


def test_compare_inventories_on_hand_made_squares(pair):
    new, ref = pair
    glaciers, totals = compare_inventories(new, ref)
    g = glaciers.set_index("ref_id")
    assert list(g.new_id) == [10, 11, None]
    np.testing.assert_allclose(g.area_ref_km2, [1.0, 0.25, 0.04], rtol=1e-5)
    np.testing.assert_allclose(g.area_new_km2, [1.0, 0.125, 0.0], rtol=1e-5)
    np.testing.assert_allclose(g.area_change_km2, [0.0, -0.125, -0.04], atol=1e-6)
    np.testing.assert_allclose(g.area_change_pct, [0.0, -50.0, -100.0], atol=1e-3)
    np.testing.assert_allclose(g.iou, [0.9 / 1.1, 0.5, 0.0], rtol=1e-5)
    assert totals["area_ref_km2"] == pytest.approx(1.29, rel=1e-5)
    assert totals["area_new_km2"] == pytest.approx(1.135, rel=1e-5)
    assert totals["intersection_km2"] == pytest.approx(1.025, rel=1e-5)
    assert totals["union_km2"] == pytest.approx(1.4, rel=1e-5)
    assert totals["iou"] == pytest.approx(1.025 / 1.4, rel=1e-5)
    assert (totals["n_ref_matched"], totals["n_ref_unmatched"], totals["n_new_matched"], totals["n_new_unmatched"]) == (
        2,
        1,
        2,
        1,
    )


def test_compare_reprojects_and_honours_min_overlap(pair):
    new, ref = pair
    a = compare_inventories(new.to_crs("EPSG:4326"), ref)
    b = compare_inventories(new, ref)
    np.testing.assert_allclose(a.glaciers.iou, b.glaciers.iou, atol=1e-4)
    strict = compare_inventories(new, ref, min_overlap=0.6)
    assert list(strict.glaciers.new_id) == [10, None, None]
    with pytest.raises(InvalidArgumentError, match="min_overlap"):
        compare_inventories(new, ref, min_overlap=1.5)
    with pytest.raises(CRSError):
        compare_inventories(gpd.GeoDataFrame(geometry=list(new.geometry)), ref)


def test_compare_flags_a_new_polygon_that_merges_two_glaciers():
    ref = _frame([box(X0, Y0, X0 + 1000, Y0 + 1000), box(X0 + 1000, Y0, X0 + 2000, Y0 + 1000)], rgi_id=["L", "R"])
    new = _frame([box(X0, Y0, X0 + 2000, Y0 + 1000)])
    glaciers, totals = compare_inventories(new, ref)
    assert glaciers.new_shared.all() and glaciers.iou.tolist() == pytest.approx([0.5, 0.5], rel=1e-5)
    assert totals["iou"] == pytest.approx(1.0, rel=1e-4)  # edges bend slightly when reprojected


# ---------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def small_inventory():
    e0, n0 = utm_of(9.0, LAT0)
    f = plane(e0, n0, GE, GN)
    dem = utm_dem(f, e0, n0)
    g = gpd.GeoDataFrame(geometry=[Point(e0, n0).buffer(800), Point(e0 + 1500, n0).buffer(400)], crs=UTM32)
    return inventory(g, dem, date="2020-09-01", dem_source="synthetic", probability=dem * 0 + 0.75)


@pytest.mark.parametrize("suffix", [".parquet", ".gpkg", ".shp"])
def test_write_read_round_trip(tmp_path, small_inventory, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    path = write_inventory(small_inventory, tmp_path / f"inv{suffix}")
    back = read_inventory(path)
    assert back.crs == small_inventory.crs and len(back) == 2
    for c in small_inventory.columns:
        if c == "geometry":
            continue
        if small_inventory[c].dtype.kind == "f":
            np.testing.assert_allclose(
                back[c].to_numpy(float), small_inventory[c].to_numpy(float), rtol=1e-9, err_msg=c
            )
        else:
            assert list(back[c]) == list(small_inventory[c]), c
    assert back.geometry.geom_equals_exact(small_inventory.geometry, 1e-6).all()


def test_shapefile_uses_short_documented_names(tmp_path, small_inventory):
    path = write_inventory(small_inventory, tmp_path / "inv.shp")
    raw = gpd.read_file(path)
    names = [c for c in raw.columns if c != "geometry"]
    assert all(len(c) <= 10 for c in names)
    assert {"perim_km", "mean_prob", "dem_frac", "glac_id", "area_km2", "aspect_sec"} <= set(names)
    assert SHAPEFILE_NAMES["perimeter_km"] == "perim_km" and SHAPEFILE_NAMES["mean_probability"] == "mean_prob"


def test_write_errors(tmp_path, small_inventory):
    write_inventory(small_inventory, tmp_path / "a.gpkg")
    with pytest.raises(StoreExistsError, match="overwrite=True"):
        write_inventory(small_inventory, tmp_path / "a.gpkg")
    write_inventory(small_inventory, tmp_path / "a.gpkg", overwrite=True)
    with pytest.raises(InvalidArgumentError, match=".parquet"):
        write_inventory(small_inventory, tmp_path / "a.csv")
    long = small_inventory.assign(a_very_long_column=1)
    with pytest.raises(InvalidArgumentError, match="a_very_long_column"):
        write_inventory(long, tmp_path / "b.shp")
    with pytest.raises(InventoryNotFoundError):
        read_inventory(tmp_path / "missing.gpkg")
    with pytest.raises(FileNotFoundError):
        read_inventory(tmp_path / "missing.gpkg")


# ---------------------------------------------------------------------------- batched (in-memory) path

import importlib  # noqa: E402

import shapely.affinity  # noqa: E402

from glacierxr.testing.glaciers import many_glaciers  # noqa: E402

_inv_module = importlib.import_module("glacierxr.inventory")  # the module (gx.inventory is the function)


def _assert_same(fast: gpd.GeoDataFrame, slow: gpd.GeoDataFrame) -> None:
    """Tolerance: none. The batched path must give bit-identical attributes."""
    import pandas as pd

    pd.testing.assert_frame_equal(fast, slow, check_exact=True)


@pytest.fixture(scope="module")
def region():
    return many_glaciers(300, seed=3)


def test_many_glaciers_is_seeded_disjoint_and_log_normal(region):
    outlines, dem, prob = region
    again = many_glaciers(300, seed=3)[0]
    assert outlines.geometry.geom_equals_exact(again.geometry, 0).all()
    assert outlines.is_valid.all() and (outlines.geom_type == "Polygon").all()
    i, j = outlines.sindex.query(outlines.geometry, predicate="intersects")
    assert (i == j).all()  # no two glaciers touch
    area = outlines.area / 1e6
    assert 0.1 < area.median() < 0.4 and 0.03 < (area > 1).mean() < 0.2
    assert (outlines.geometry.interiors.str.len() > 0).any()  # some nunataks
    assert np.nanmin(dem.values) >= 3000 and np.nanmax(dem.values) <= 7000 and np.isnan(dem.values).any()
    assert dem.rio.crs == outlines.crs and dem.rio.transform() == prob.rio.transform()
    assert isinstance(dem.data, np.ndarray) and dem.dtype == np.float32


def test_batched_path_equals_the_one_by_one_path(region):
    """A few hundred glaciers (nunataks, DEM voids, probability on the DEM grid): bit-identical."""
    outlines, dem, prob = region
    kw = dict(probability=prob, date="2021-08-01", dem_source="synthetic")
    fast = _inv_module._inventory(outlines, dem, **kw)
    slow = _inv_module._inventory(outlines, dem, batched=False, **kw)
    assert fast.valid_dem_frac.lt(1).any() and fast.zmin_m.notna().all()
    _assert_same(fast, slow)


def test_batched_path_equals_on_a_coarse_grid_with_overlaps_and_tiny_glaciers():
    """30 m pixels (coverage weights for the tiny ones), overlapping and multi-part outlines,
    a float64 DEM with a nodata value and a probability raster on another grid."""
    outlines, dem, prob = many_glaciers(100, seed=5, resolution=30.0, median_km2=0.05, min_km2=0.002)
    g = outlines.geometry.to_numpy()
    extra = [
        shapely.affinity.translate(g[0], g[0].bounds[2] - g[0].bounds[0] - 60.0, 0.0),  # overlaps glacier 0
        MultiPolygon([g[1], g[2]]),
    ]
    outlines = gpd.GeoDataFrame(geometry=[*g, *extra], crs=outlines.crs)
    z = dem.values.astype("float64")
    z[np.isnan(z)] = -9999.0
    dem64 = dem.copy(data=z).rio.write_nodata(-9999.0)
    before = dem64.values.copy()
    prob_other = prob.rio.reproject(prob.rio.crs, resolution=20.0)
    for p in (prob, prob_other):
        fast = _inv_module._inventory(outlines, dem64, probability=p)
        slow = _inv_module._inventory(outlines, dem64, probability=p, batched=False)
        _assert_same(fast, slow)
    assert (fast.valid_dem_frac.notna()).all() and fast.mean_probability.notna().all()
    np.testing.assert_array_equal(dem64.values, before)  # windows are copies: the DEM is untouched


def test_batched_path_matches_the_dask_path(region):
    outlines, dem, prob = region
    sub = outlines.iloc[:40]
    fast = inventory(sub, dem, probability=prob)
    lazy = inventory(sub, dem.chunk(512), probability=prob.chunk(512))
    _assert_same(fast, lazy)
