"""A region across a UTM zone line, in tiles: one polygon per glacier across tile borders and the zone line."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
from click.testing import CliRunner

import glacierxr as gx
from glacierxr.cli import main
from glacierxr.stac_server import serve
from glacierxr.synthetic import make_region

COMMON = dict(chunk=128, window=128, overlap=32, min_area_km2=0.01, quiet=True, quicklook=False, margin_km=0.3)


@pytest.fixture(scope="module")
def zones(tmp_path_factory):
    """A 2.6 x 3.8 km region centred on lon 90 (zones 45N / 46N), run with 2 km tiles and with one tile per zone."""
    root = tmp_path_factory.mktemp("zones")
    region = make_region(root / "region", seed=1, shape=(256, 384), center=(90.0, 28.0), dates=2)
    with serve(region.stac_dir) as url:
        small = gx.run_inventory(url, bbox=region.bbox, datetime=region.datetime, out=root / "small", tile_km=2, **COMMON)
        one = gx.run_inventory(url, bbox=region.bbox, datetime=region.datetime, out=root / "one", tile_km=100, **COMMON)
        plan = CliRunner().invoke(main, ["plan", "--stac", url, "--bbox", *map(str, region.bbox), "--datetime",
                                         region.datetime, "--tile-km", "2", "--margin-km", "0.3", "--json"])
        w, s, e, n = region.bbox
        aoi = root / "aoi.geojson"  # a triangle over the western half: fewer tiles, searched by polygon
        gpd.GeoDataFrame(geometry=[shapely.Polygon([(w, s), (90.0, s), (w, n)])], crs=4326).to_file(aoi)
        args = ["plan", "--stac", url, "--aoi", str(aoi), "--datetime", region.datetime, "--tile-km", "1"]
        by_aoi = CliRunner().invoke(main, [*args, "--json"])
        text = CliRunner().invoke(main, [*args, "--map", str(root / "plan.png"), "--workers", "2", "--throughput", "1"])
    return region, root, small, one, (plan, by_aoi, text)


def test_a_polygon_aoi_plans_only_its_tiles(zones):
    region, root, small, _, (plan, by_aoi, text) = zones
    assert by_aoi.exit_code == 0, by_aoi.output
    tri = json.loads(by_aoi.output)
    assert 0 < tri["tiles"] and tri["epsg"] == [32645] and tri["km2"] < 0.7 * json.loads(plan.output)["km2"]
    assert text.exit_code == 0, text.output
    assert "estimate" in text.output and "2 workers at 1 km²/s" in text.output
    from PIL import Image

    assert Image.open(root / "plan.png").size[0] > 100


def test_the_plan_has_tiles_in_both_zones(zones):
    region, _, small, _, (plan, _, _) = zones
    assert plan.exit_code == 0, plan.output
    summary = json.loads(plan.output)
    assert {"tiles", "epsg", "km2", "items", "max_tasks_per_tile", "tile_km"} <= set(summary)
    assert summary["epsg"] == [32645, 32646] and summary["tile_km"] == 2.0
    assert summary["tiles"] == small["plan"]["tiles"] >= 4
    assert summary["items"] == sum(len(v) for v in region.collections.values() if v) - len(region.collections.get(
        "sentinel-1-rtc", []))
    assert 0 < summary["max_tasks_per_tile"] < 20_000
    # the tiles own the region once: their owned areas add up to the region's area (not twice near the line)
    assert summary["km2"] == pytest.approx(small["km2_processed"], abs=0.06)
    from pyproj import Geod

    bbox_km2 = abs(Geod(ellps="WGS84").geometry_area_perimeter(shapely.box(*region.bbox))[0]) / 1e6
    assert bbox_km2 <= summary["km2"] <= 1.1 * bbox_km2  # the box's bounding rectangle on each zone's grid


def test_glaciers_across_the_zone_line_are_one_polygon(zones):
    region, root, small, _, _ = zones
    out = gpd.read_parquet(root / "small" / "outlines.parquet")
    truth = gpd.read_file(region.truth_path).to_crs(4326)
    crossing = truth[truth["zones"].str.contains(",")]
    assert len(crossing) >= 2
    across = out[(out.geometry.bounds.minx < 90.0) & (out.geometry.bounds.maxx > 90.0)]
    assert len(across) >= 1 and small["merged_glaciers"] >= len(across)
    for g in crossing.geometry:  # every glacier crossing the line and mapped is mapped as ONE polygon across it
        hits = [h for h in out.geometry if h.intersection(g).area > 0.5 * g.area]
        assert len(hits) <= 1
    # no seam: no two output glaciers share an edge or come within a pixel of each other
    geoms = out.geometry.values
    tree = shapely.STRtree(geoms)
    metric = out.to_crs(32646).geometry.values
    left, right = tree.query(geoms, predicate="dwithin", distance=2e-4)
    assert all(metric[i].distance(metric[j]) > 10.0 for i, j in zip(left, right, strict=True) if i < j)
    # against the truth: every true glacier is found, none twice, none invented
    for g in truth.geometry:
        assert out.intersects(g).sum() >= 1
    assert all(truth.intersects(g).sum() >= 1 for g in out.geometry)


def test_small_tiles_equal_one_tile_per_zone(zones):
    _, root, small, one, _ = zones
    assert small["plan"]["tiles"] > one["plan"]["tiles"]  # 2 km tiles; 100 km tiles: one per zone and row
    a, b = gpd.read_parquet(root / "small" / "outlines.parquet"), gpd.read_parquet(root / "one" / "outlines.parquet")
    assert len(a) == len(b) >= 5
    np.testing.assert_allclose(a["area_km2"], b["area_km2"], rtol=5e-3)
    for x, y in zip(a.geometry, b.geometry, strict=True):
        assert x.symmetric_difference(y).area <= 1e-3 * x.area
