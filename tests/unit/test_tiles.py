"""The global production tiling: ids, zones, nesting, AOI selection, ownership of pixels near zone lines."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Transformer

from glacierxr.errors import InvalidArgumentError, InvalidBBoxError
from glacierxr.tiles import Tile, check_tile_km, lattice_top, read_aoi, tile_from_id, tiles_for, zone_strip, zones_of
from glacierxr.tilework import meridian_x, strip_columns


def test_ids_are_the_lower_left_corner_in_km():
    assert Tile(32643, 600_000, 3_900_000, 100_000, 2000, 10.0).id == "32643_0600_3900"
    assert Tile(32645, 402_500, 3_100_000, 2500, 500, 10.0).id == "32645_0402.5_3100"
    t = tile_from_id("32643_0600_3900", tile_km=100, margin_km=2, resolution=10)
    assert t.square == (600_000, 3_900_000, 700_000, 4_000_000) and t.grid.shape == (10_400, 10_400)
    clipped = Tile(32643, 600_000, 3_900_000, 100_000, 2000, 10.0, clip=(650_000, 3_900_000, 700_000, 3_950_000))
    assert Tile.from_dict(clipped.to_dict()) == clipped and clipped.id == t.id and clipped.core_shape == (5000, 5000)
    with pytest.raises(InvalidArgumentError, match="is not a tile id"):
        tile_from_id("nope", tile_km=100, margin_km=2, resolution=10)


def test_zones_and_strips():
    assert zone_strip(32643) == (72.0, 0.0, 78.0, 90.0) and zone_strip(32719) == (-72.0, -90.0, -66.0, 0.0)
    assert zones_of((73.0, 33.5, 79.5, 38.9)) == [32643, 32644]
    assert zones_of((66.0, 26.0, 72.0, 46.0)) == [32642]  # ends exactly on a zone line
    assert zones_of((-70.0, -5.0, -69.0, 5.0)) == [32619, 32719]


@pytest.mark.parametrize("km", [100, 50, 25, 20, 10, 5, 2.5, 1, 200])
def test_tile_sizes_that_nest(km):
    check_tile_km(km, 10.0, 2.0)


@pytest.mark.parametrize(("km", "res", "margin", "match"), [
    (30, 10.0, 2.0, "does not divide the 100 km pattern"), (0, 10.0, 2.0, "must be > 0"),
    (2.5, 30.0, 2.0, "not a whole number of 30 m pixels"), (100, 10.0, -1, "margin_km=-1 >= 0"),
    (100, 10.0, 0.005, "margin_km=0.005 is not a whole number"),
])
def test_tile_sizes_refused(km, res, margin, match):
    with pytest.raises(InvalidArgumentError, match=match):
        check_tile_km(km, res, margin)


def test_the_equator_is_a_lattice_line():
    """Both hemispheres of a zone share one pixel lattice: a point has the same row in either CRS."""
    north, south = Transformer.from_crs(4326, 32619, always_xy=True), Transformer.from_crs(4326, 32719, always_xy=True)
    for lat in (-0.3, 0.0, 0.2):
        yn, ys = north.transform(-69.0, lat)[1], south.transform(-69.0, lat)[1]
        assert (lattice_top(32619) - yn) == pytest.approx(lattice_top(32719) - ys, abs=1e-6)


def test_tiles_own_an_aoi_across_zones_once():
    bbox = (77.0, 35.0, 79.0, 36.5)  # zones 43 and 44
    tiles = tiles_for(read_aoi(bbox), tile_km=50, margin_km=2, resolution=10)
    assert {t.epsg for t in tiles} == {32643, 32644}
    owned = [t.footprint for t in tiles]
    union = shapely.union_all(owned)
    assert union.contains(shapely.box(*bbox).buffer(-1e-6))
    assert sum(g.area for g in owned) == pytest.approx(union.area, rel=1e-9)  # no pixel owned twice
    assert len({t.id for t in tiles}) == len(tiles)
    straddling = [t for t in tiles if t.straddles_zone_line]
    assert straddling and all(t.footprint.bounds[2] <= 78.0 or t.footprint.bounds[0] >= 78.0 for t in tiles)
    # the tiling is global: a larger AOI holds the same tiles with the same ids and squares
    bigger = {t.id: t.square for t in tiles_for(read_aoi((76.0, 34.0, 80.0, 37.0)), tile_km=50, margin_km=2,
                                                 resolution=10)}
    assert all(bigger[t.id] == t.square for t in tiles if t.clip is None)


def test_a_polygon_aoi_plans_fewer_tiles_than_its_box(tmp_path):
    triangle = shapely.Polygon([(74, 34), (79, 34), (74, 38.5)])
    path = tmp_path / "range.gpkg"
    gpd.GeoDataFrame(geometry=[triangle], crs=4326).to_crs(32643).to_file(path)
    from_file = tiles_for(read_aoi(path), tile_km=100)
    box = tiles_for(read_aoi(triangle.bounds), tile_km=100)
    assert 0 < len(from_file) < len(box)
    assert len(tiles_for(read_aoi(path, buffer_km=50), tile_km=100, buffer_km=50)) > len(from_file)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_aoi(tmp_path / "missing.gpkg")
    with pytest.raises(InvalidBBoxError):
        read_aoi((10, 50, 5, 55))


def test_pixels_are_kept_when_they_reach_into_the_strip():
    tile = Tile(32643, 700_000, 3_900_000, 100_000, 2000, 100.0)  # zone 43's east edge (lon 78) runs through it
    assert tile.straddles_zone_line
    lo, hi = strip_columns(tile)
    assert (lo == 0).all() and (hi < tile.core_shape[1]).all() and (hi > 0).all()
    xmin, _, _, ymax = tile.core_bounds
    rows = np.arange(tile.core_shape[0])
    inv = Transformer.from_crs(32643, 4326, always_xy=True)
    edges = (ymax - rows * 100.0, ymax - (rows + 1) * 100.0)  # each row's top and bottom
    lon_last = np.minimum(*(inv.transform(xmin + (hi - 1) * 100.0, y)[0] for y in edges))
    lon_next = np.minimum(*(inv.transform(xmin + hi * 100.0, y)[0] for y in edges))
    assert (lon_last < 78.0).all()  # the last kept pixel reaches into the strip
    assert (lon_next >= 78.0 - 1e-9).all()  # the first dropped pixel lies wholly beyond the line
    x = meridian_x(32643, 78.0, np.array([3_900_000.0, 4_000_000.0]))
    assert inv.transform(x, np.array([3_900_000.0, 4_000_000.0]))[0] == pytest.approx([78.0, 78.0], abs=1e-9)
