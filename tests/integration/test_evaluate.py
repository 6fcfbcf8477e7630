"""evaluate on the synthetic region: the truth scores perfectly, an eroded truth scores as expected,
and a real (band-ratio) prediction through the lazy cube -> predict -> evaluate chain."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from scipy import ndimage
from scipy.spatial import cKDTree

import glacierxr as gx
from glacierxr.evaluate import evaluate, evaluate_lazy


@pytest.fixture(scope="module")
def truth(region) -> xr.DataArray:
    """The true glacier mask on the region's 10 m grid, with its CRS."""
    h, w = region.shape
    t = region.transform
    mask = xr.DataArray(region.arrays["glacier"].astype(np.float32), dims=("y", "x"),
                        coords={"y": t.f + t.e * (np.arange(h) + 0.5), "x": t.c + t.a * (np.arange(w) + 0.5)})
    return mask.rio.write_crs(region.crs)


@pytest.fixture(scope="module")
def outlines(region) -> gpd.GeoDataFrame:
    return gpd.read_file(region.truth_path, layer="glaciers")


def boundary(mask: np.ndarray) -> np.ndarray:
    outside = np.pad(~mask, 1, constant_values=False)
    return mask & (outside[:-2, 1:-1] | outside[2:, 1:-1] | outside[1:-1, :-2] | outside[1:-1, 2:])


def symmetric_distances(a: np.ndarray, b: np.ndarray, res: float) -> np.ndarray:
    """Boundary distances both ways with a k-d tree over the whole grid (independent of the EDT)."""
    pa, pb = np.argwhere(boundary(a)) * res, np.argwhere(boundary(b)) * res
    return np.concatenate([cKDTree(pb).query(pa)[0], cKDTree(pa).query(pb)[0]])


@pytest.mark.parametrize("chunks", [128, 100, None])
def test_the_truth_scores_perfectly(truth, outlines, chunks):
    pred = truth if chunks is None else truth.chunk(chunks)
    r = evaluate(pred, outlines)
    n = truth.size
    assert r["n_pixels"] == n and r["n_excluded"] == 0
    assert r["oa"] == 1 and r["miou"] == 1 and r["mean_f1"] == 1
    assert r["confusion"][0][1] == r["confusion"][1][0] == 0
    assert r["confusion"][1][1] == int(truth.sum())
    assert r["boundary_mean_m"] == 0 and r["boundary_p95_m"] == 0
    assert [g["id"] for g in r["per_glacier"]] == list(outlines.glac_id)
    for g, area in zip(r["per_glacier"], outlines.area_km2, strict=True):
        assert g["area_error_km2"] == 0 and g["area_error_pct"] == 0
        assert g["area_ref_km2"] == pytest.approx(area, rel=1e-9)  # outlines follow pixel edges


def test_the_truth_from_a_file_and_in_lonlat(truth, outlines, region):
    native = evaluate(truth.chunk(128), region.truth_path)
    assert native["miou"] == 1
    lonlat = evaluate(truth.chunk(128), outlines.to_crs("EPSG:4326"))
    diff = np.abs(np.array(lonlat["confusion"]) - np.array(native["confusion"])).sum()
    assert diff <= 10, lonlat["confusion"]  # reprojected vertices move a few boundary pixel centres
    assert lonlat["miou"] > 0.998 and lonlat["boundary_p95_m"] == 0


def test_an_eroded_truth_scores_as_expected(truth, outlines, region):
    true = truth.values.astype(bool)
    eroded = ndimage.binary_erosion(true, iterations=2)  # every edge moves 2 px inward (4-connected)
    r = evaluate(truth.copy(data=eroded.astype(np.float32)).chunk(96), outlines)
    # eroded is inside the truth: TP = |eroded|, FN = the rest, FP = 0
    assert r["confusion"] == [[int((~true).sum()), 0], [int(true.sum() - eroded.sum()), int(eroded.sum())]]
    assert r["iou"]["glacier"] == pytest.approx(eroded.sum() / true.sum())
    assert r["iou"]["glacier"] < 0.7 and r["precision"]["glacier"] == 1
    # boundaries 2 px = 20 m apart along straight edges (less on staircase diagonals)
    assert r["boundary_p95_m"] == pytest.approx(2 * region.resolution)
    assert 0.7 * 20 < r["boundary_mean_m"] <= 20
    d = symmetric_distances(true, eroded, region.resolution)
    assert r["boundary"]["n"] == len(d)
    assert r["boundary_mean_m"] == pytest.approx(d.mean(), rel=1e-9)
    assert r["boundary_p95_m"] == np.percentile(d, 95, method="inverted_cdf")
    # per glacier: the eroded area lies inside each outline and is all attributed to it
    for g in r["per_glacier"]:
        assert g["area_error_km2"] < 0 and g["area_pred_km2"] == pytest.approx(g["area_pred_inside_km2"])
    total = sum(g["area_pred_km2"] for g in r["per_glacier"])
    assert total == pytest.approx(eroded.sum() * region.resolution**2 / 1e6)


@pytest.fixture(scope="module")
def band_ratio(region, stac_url) -> xr.DataArray:
    """A real prediction: the band-ratio model over the region's cube, lazy, NaN outside the data."""
    items = gx.search(stac_url, bbox=region.bbox, datetime=region.datetime, sensors=("sentinel-2",))
    cube = gx.open_cube(items, bbox=region.bbox, chunks=128)
    model = gx.models.create("band-ratio", bands=["B03", "B04", "B08", "B11"])
    return cube.glacier.predict(model, window=128, overlap=0)



def test_band_ratio_prediction_is_scored_lazily(band_ratio, outlines, no_compute):
    lazy = evaluate_lazy(band_ratio, outlines)
    assert hasattr(lazy.counts, "dask")  # nothing computed yet (the no_compute fixture)


def test_band_ratio_prediction_scores(band_ratio, outlines):
    prob = band_ratio.persist()  # run the model once for the four evaluations below
    r = evaluate(prob, outlines)
    values = prob.values
    assert r["n_excluded"] == int(np.isnan(values).sum()) > 0  # the cube's border beyond the data
    assert r["n_pixels"] + r["n_excluded"] == values.size
    assert r["oa"] > 0.97 and 0.6 < r["iou"]["glacier"] < 1  # the ratio misses debris-covered ice
    assert r["boundary_mean_m"] > 0 and r["boundary_p95_m"] >= r["boundary_mean_m"]
    lonlat = evaluate(prob.chunk(200), outlines.to_crs("EPSG:4326"))
    assert np.abs(np.array(lonlat["confusion"]) - np.array(r["confusion"])).sum() <= 10
    assert evaluate(prob.chunk(200), outlines) == r
    assert evaluate(prob.chunk(-1), outlines) == r
