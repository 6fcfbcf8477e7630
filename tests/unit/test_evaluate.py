"""evaluate: confusion counts against plain NumPy, metric formulas, CRS handling, boundary distances, laziness."""

from __future__ import annotations

import json
import tracemalloc

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr
from affine import Affine
from dask.callbacks import Callback
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio import features
from scipy import ndimage

from glacierxr.errors import CRSError, GlacierxrError, InputShapeError, InvalidArgumentError
from glacierxr.evaluate import evaluate, evaluate_lazy, pixel_metrics

CRS = "EPSG:32645"
RES = 10.0
X0, Y0 = 480_000.0, 3_100_000.0  # top-left corner of every test grid
TRANSFORM = Affine(RES, 0, X0, 0, -RES, Y0)


def on_grid(values: np.ndarray, crs: str | None = CRS) -> xr.DataArray:
    """A (y, x) DataArray on the test grid (pixel-centre coords), with a CRS."""
    h, w = values.shape
    out = xr.DataArray(values, dims=("y", "x"),
                       coords={"y": Y0 - RES * (np.arange(h) + 0.5), "x": X0 + RES * (np.arange(w) + 0.5)})
    return out.rio.write_crs(crs) if crs else out


def random_outlines(rng: np.random.Generator, shape: tuple[int, int], n: int = 14) -> gpd.GeoDataFrame:
    """Irregular blobs at arbitrary (not pixel-aligned) positions: one with a hole, one multipart, one off the grid."""
    h, w = shape
    geoms = []
    for _ in range(n):
        cx, cy = X0 + rng.uniform(0, w * RES), Y0 - rng.uniform(0, h * RES)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
        radii = rng.uniform(60, 260, 9)
        geoms.append(shapely.Polygon(np.c_[cx + radii * np.cos(angles), cy + radii * np.sin(angles)]).buffer(0))
    geoms[0] = shapely.Point(X0 + 0.3 * w * RES, Y0 - 0.4 * h * RES).buffer(300.3).difference(
        shapely.Point(X0 + 0.3 * w * RES + 17, Y0 - 0.4 * h * RES).buffer(120.7))
    geoms[1] = shapely.MultiPolygon([shapely.box(X0 + 33.3, Y0 - 500.2, X0 + 401.7, Y0 - 201.1),
                                     shapely.box(X0 + 611.1, Y0 - 917.3, X0 + 790.9, Y0 - 755.5)])
    geoms[2] = shapely.box(X0 - 500.5, Y0 - 300.3, X0 + 250.25, Y0 - 77.7)  # partly off the grid
    return gpd.GeoDataFrame({"glac_id": [f"G{i:03d}" for i in range(n)]}, geometry=geoms, crs=CRS)


def random_prediction(rng: np.random.Generator, shape: tuple[int, int], truth: np.ndarray) -> np.ndarray:
    """Probabilities correlated with ``truth`` (smooth noise), with a NaN patch."""
    noise = ndimage.gaussian_filter(rng.normal(size=shape), 3)
    noise /= noise.std()
    p = (1 / (1 + np.exp(-(4 * (truth - 0.5) + 3 * noise)))).astype(np.float32)
    p[20:45, 130:190] = np.nan
    return p


def numpy_confusion(pred: np.ndarray, truth: np.ndarray, threshold: float) -> list[list[int]]:
    valid = ~np.isnan(pred)
    glacier = np.nan_to_num(pred, nan=0) >= threshold
    t = truth.astype(bool)
    count = lambda m: int((m & valid).sum())  # noqa: E731
    return [[count(~t & ~glacier), count(~t & glacier)], [count(t & ~glacier), count(t & glacier)]]


def burn(gdf: gpd.GeoDataFrame, shape: tuple[int, int]) -> np.ndarray:
    """Whole-grid rasterisation with rasterio (pixel-centre rule): the independent reference."""
    return features.rasterize(((g, 1) for g in gdf.geometry), out_shape=shape, transform=TRANSFORM,
                              fill=0, all_touched=False, dtype="uint8")


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(42)
    shape = (230, 260)
    gdf = random_outlines(rng, shape)
    truth = burn(gdf, shape)
    return gdf, truth, random_prediction(rng, shape, truth)


# ----------------------------------------------------------------------------- confusion vs NumPy


@pytest.mark.parametrize("chunks", [64, 100, None])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_confusion_equals_plain_numpy(scene, chunks, threshold):
    gdf, truth, pred = scene
    prob = on_grid(pred) if chunks is None else on_grid(pred).chunk(chunks)
    result = evaluate(prob, gdf, threshold=threshold, objects=False)
    expected = numpy_confusion(pred, truth, threshold)
    assert result["confusion"] == expected
    assert 0 < expected[1][1] and 0 < expected[0][1] and 0 < expected[1][0]  # a non-trivial case
    assert result["n_pixels"] == int((~np.isnan(pred)).sum())
    assert result["n_excluded"] == int(np.isnan(pred).sum())


@pytest.mark.parametrize("chunks", [64, 100, None])
def test_raster_reference_equals_plain_numpy(scene, chunks):
    _, truth, pred = scene
    ref = on_grid(truth.astype(np.float32))
    ref[200:, :30] = np.nan  # no reference there: excluded as well
    prob = on_grid(pred) if chunks is None else on_grid(pred).chunk(chunks)
    result = evaluate(prob, ref.chunk(77))
    masked = pred.copy()
    masked[200:, :30] = np.nan
    assert result["confusion"] == numpy_confusion(masked, truth, 0.5)
    assert result["per_glacier"] is None


def test_per_glacier_areas_equal_numpy(scene):
    from scipy.spatial import cKDTree

    gdf, _, pred = scene
    result = evaluate(on_grid(pred).chunk(64), gdf)
    valid = ~np.isnan(pred)
    glacier = valid & (np.nan_to_num(pred) >= 0.5)
    # whole-grid labels, burnt in order: where outlines overlap, the later one owns the pixel
    labels = features.rasterize(((g, i + 1) for i, g in enumerate(gdf.geometry)), out_shape=pred.shape,
                                transform=TRANSFORM, fill=0, all_touched=False, dtype="int32")
    n = len(gdf) + 1
    ref_px = np.bincount(labels[valid], minlength=n)
    inside_px = np.bincount(labels[glacier], minlength=n)
    # attribution: nearest reference pixel (brute force with a k-d tree) within 640 m
    ref_rc = np.argwhere(labels > 0)
    pred_rc = np.argwhere(glacier)
    dist, nearest = cKDTree(ref_rc * RES).query(pred_rc * RES)
    zone = np.where(dist <= 640, labels[tuple(ref_rc[nearest].T)], 0)
    zone_px = np.bincount(zone, minlength=n)
    km2 = RES * RES / 1e6
    rows = result["per_glacier"]
    assert [r["id"] for r in rows] == list(gdf.glac_id)
    for k, row in enumerate(rows, start=1):
        assert row["area_ref_km2"] == pytest.approx(ref_px[k] * km2, abs=1e-12)
        assert row["area_pred_inside_km2"] == pytest.approx(inside_px[k] * km2, abs=1e-12)
        # ties between two glaciers at the same distance may be broken differently
        assert row["area_pred_km2"] == pytest.approx(zone_px[k] * km2, rel=0.03)
        assert row["area_error_km2"] == pytest.approx(row["area_pred_km2"] - row["area_ref_km2"])
        if row["area_ref_km2"]:
            assert row["area_error_pct"] == pytest.approx(100 * row["area_error_km2"] / row["area_ref_km2"])
    extent = shapely.box(X0, Y0 - pred.shape[0] * RES, X0 + pred.shape[1] * RES, Y0)
    assert [r["clipped"] for r in rows] == [not g.within(extent) for g in gdf.geometry]
    assert rows[2]["clipped"]
    assert result["area"]["unmatched_pred_km2"] == pytest.approx(zone_px[0] * km2)  # ties do not matter here
    assert result["area"]["pred_matched_km2"] == pytest.approx(zone_px[1:].sum() * km2)
    assert result["area"]["pred_km2"] == pytest.approx(glacier.sum() * km2)
    assert result["area"]["ref_km2"] == pytest.approx(ref_px[1:].sum() * km2)


def test_result_is_json(scene):
    gdf, _, pred = scene
    result = evaluate(on_grid(pred).chunk(100), gdf)
    json.loads(json.dumps(result, allow_nan=False))
    for key in ("oa", "precision", "recall", "f1", "iou", "mean_f1", "miou", "confusion", "n_pixels",
                "boundary_mean_m", "boundary_p95_m", "per_glacier", "boundary", "area"):
        assert key in result
    row = result["per_glacier"][0]
    assert set(row) >= {"id", "area_ref_km2", "area_pred_km2", "area_error_km2", "area_error_pct"}


# ----------------------------------------------------------------------------- metric formulas


def test_perfect_prediction():
    truth = np.zeros((40, 50), np.float32)
    truth[5:30, 10:45] = 1
    r = evaluate(on_grid(truth), on_grid(truth))
    assert r["oa"] == 1 and r["miou"] == 1 and r["mean_f1"] == 1
    assert r["iou"] == {"background": 1.0, "glacier": 1.0}
    assert r["boundary_mean_m"] == 0 and r["boundary_p95_m"] == 0
    assert r["confusion"] == [[40 * 50 - 25 * 35, 0], [0, 25 * 35]]


def test_all_background_prediction():
    truth = np.zeros((20, 20), np.float32)
    truth[:5] = 1  # 100 glacier, 300 background
    r = evaluate(on_grid(np.zeros((20, 20), np.float32)), on_grid(truth))
    assert r["confusion"] == [[300, 0], [100, 0]]
    assert r["oa"] == 0.75
    assert r["precision"]["glacier"] is None  # 0 / 0: no glacier predicted
    assert r["recall"]["glacier"] == 0 and r["f1"]["glacier"] == 0 and r["iou"]["glacier"] == 0
    assert r["precision"]["background"] == 0.75 and r["recall"]["background"] == 1
    assert r["iou"]["background"] == 0.75 and r["f1"]["background"] == pytest.approx(2 * 0.75 / 1.75)
    assert r["miou"] == pytest.approx(0.375)
    assert r["boundary"]["ref_to_pred"]["capped"] == r["boundary"]["ref_to_pred"]["n"] > 0  # nothing to reach
    assert r["boundary"]["pred_to_ref"]["n"] == 0


def test_known_counts_give_known_scores():
    # TN=50, FP=10, FN=20, TP=20 laid out on a 10 x 10 grid
    ref = np.array([0] * 60 + [1] * 40, np.float32).reshape(10, 10)
    pred = np.array([0] * 50 + [1] * 10 + [0] * 20 + [1] * 20, np.float32).reshape(10, 10)
    r = evaluate(on_grid(pred * 0.9 + 0.05), on_grid(ref), objects=False)  # probabilities 0.05 / 0.95
    assert r["confusion"] == [[50, 10], [20, 20]]
    assert r["oa"] == pytest.approx(0.7)
    p, rc = 20 / 30, 20 / 40
    assert r["precision"]["glacier"] == pytest.approx(p) and r["recall"]["glacier"] == pytest.approx(rc)
    assert r["f1"]["glacier"] == pytest.approx(2 * p * rc / (p + rc))
    assert r["iou"]["glacier"] == pytest.approx(20 / 50)
    pb, rb = 50 / 70, 50 / 60
    assert r["f1"]["background"] == pytest.approx(2 * pb * rb / (pb + rb))
    assert r["iou"]["background"] == pytest.approx(50 / 80)
    assert r["miou"] == pytest.approx((20 / 50 + 50 / 80) / 2)
    assert r["mean_f1"] == pytest.approx((r["f1"]["glacier"] + r["f1"]["background"]) / 2)
    assert "boundary_mean_m" not in r and "per_glacier" not in r


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_f1_formula_is_the_paper_one(tn, fp, fn, tp):
    m = pixel_metrics(tn, fp, fn, tp)
    for cls, (t, p_, f) in {"glacier": (tp, fp, fn), "background": (tn, fn, fp)}.items():
        prec, rec = m["precision"][cls], m["recall"][cls]
        if prec is not None and rec is not None and prec + rec > 0:
            assert m["f1"][cls] == pytest.approx(2 * prec * rec / (prec + rec))
        if t + p_ + f:
            assert m["iou"][cls] == pytest.approx(t / (t + p_ + f))
    if tn + fp + fn + tp:
        assert m["oa"] == pytest.approx((tp + tn) / (tn + fp + fn + tp))


def test_nan_pixels_are_excluded():
    truth = np.zeros((30, 30), np.float32)
    truth[10:20, 10:20] = 1
    pred = truth.copy()
    pred[:, :15] = np.nan  # half the glacier missing from the prediction: no error counted there
    r = evaluate(on_grid(pred).chunk(8), on_grid(truth))
    assert r["n_pixels"] == 30 * 15 and r["n_excluded"] == 30 * 15
    assert r["oa"] == 1 and r["miou"] == 1
    assert r["boundary_mean_m"] == 0  # the cut along the NaN edge is no boundary
    assert r["area"]["ref_km2"] == pytest.approx(50 * RES * RES / 1e6)


def test_mask_and_bool_predictions_are_accepted():
    truth = np.zeros((16, 16), np.uint8)
    truth[4:9, 3:12] = 1
    a = evaluate(on_grid(truth), on_grid(truth), objects=False)
    b = evaluate(on_grid(truth.astype(bool)), on_grid(truth), objects=False)
    assert a == b and a["miou"] == 1


# ----------------------------------------------------------------------------- CRS


def test_outlines_in_another_crs_give_the_same_counts(scene):
    gdf, _, pred = scene
    prob = on_grid(pred).chunk(100)
    native = evaluate(prob, gdf)
    for other in ("EPSG:4326", "EPSG:3857", "EPSG:32644"):
        moved = evaluate(prob, gdf.to_crs(other))
        diff = np.abs(np.array(moved["confusion"]) - np.array(native["confusion"])).sum()
        assert diff <= 8, (other, moved["confusion"], native["confusion"])  # a few boundary pixels
        assert moved["iou"]["glacier"] == pytest.approx(native["iou"]["glacier"], abs=2e-3)
        assert [r["id"] for r in moved["per_glacier"]] == [r["id"] for r in native["per_glacier"]]


def test_south_up_grid_gives_the_same_scores(scene):
    gdf, _, pred = scene
    north_up = evaluate(on_grid(pred).chunk(64), gdf)
    south_up = evaluate(on_grid(pred).isel(y=slice(None, None, -1)).chunk(64), gdf)
    assert south_up["confusion"] == north_up["confusion"]
    assert south_up["boundary"] == north_up["boundary"]


def test_missing_or_disjoint_crs_raise(scene):
    gdf, truth, pred = scene
    with pytest.raises(CRSError, match="set_crs"):
        evaluate(on_grid(pred), gdf.set_crs(None, allow_override=True))
    with pytest.raises(CRSError, match="write_crs"):
        evaluate(on_grid(pred, crs=None), gdf)
    far = gdf.set_geometry(gdf.translate(50_000, 0))
    with pytest.raises(CRSError, match="overlap"):
        evaluate(on_grid(pred), far)
    wrong = gdf.set_crs("EPSG:32633", allow_override=True)  # right numbers, wrong zone: still overlaps nothing
    with pytest.raises(GlacierxrError):
        evaluate(on_grid(pred), wrong)
    with pytest.raises(CRSError, match="reproject"):
        evaluate(on_grid(pred), on_grid(truth, crs="EPSG:32644"))


def test_geographic_prediction_needs_objects_false(scene):
    gdf, _, pred = scene
    geo = on_grid(pred).rio.reproject("EPSG:4326")
    geo = geo.where(geo != geo.rio.nodata) if geo.rio.nodata is not None else geo
    with pytest.raises(CRSError, match="objects=False"):
        evaluate(geo, gdf)
    r = evaluate(geo, gdf, objects=False)
    assert 0.5 < r["oa"] <= 1


# ----------------------------------------------------------------------------- errors


def test_bad_inputs_raise_with_a_fix(scene):
    gdf, truth, pred = scene
    prob = on_grid(pred)
    with pytest.raises(InvalidArgumentError, match="threshold"):
        evaluate(prob, gdf, threshold=1.5)
    with pytest.raises(InvalidArgumentError, match="logits"):
        evaluate(on_grid(pred * 4 - 2), gdf, objects=False)
    with pytest.raises(InvalidArgumentError, match="0, 1 and NaN"):
        evaluate(prob, on_grid(truth * 2.0), objects=False)
    with pytest.raises(InputShapeError, match="shape"):
        evaluate(prob, on_grid(truth[:-1]))
    with pytest.raises(InputShapeError, match=r"\(y, x\)"):
        evaluate(xr.concat([prob, prob], "band"), gdf)
    with pytest.raises(InvalidArgumentError, match="Polygons"):
        evaluate(prob, gpd.GeoDataFrame(geometry=[shapely.LineString([(X0, Y0 - 5), (X0 + 900, Y0 - 900)])], crs=CRS))
    with pytest.raises(InvalidArgumentError, match="id_column"):
        evaluate(prob, gdf, id_column="nope")
    with pytest.raises(InvalidArgumentError, match="DataArray"):
        evaluate(pred, gdf)
    with pytest.raises(InvalidArgumentError, match="max_distance_m"):
        evaluate(prob, gdf, max_distance_m=-1)
    with pytest.raises(InvalidArgumentError, match="pixel size"):
        evaluate(prob.isel(x=[5]), gdf, objects=False)  # one column, no transform: grid unknown
    # a band dim of size 1 is fine
    assert evaluate(prob.expand_dims(band=[1]), gdf, objects=False)["oa"] > 0.5


# ----------------------------------------------------------------------------- boundary distances


def boundary_np(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (inside the grid)."""
    outside = np.pad(~mask, 1, constant_values=False)
    near = outside[:-2, 1:-1] | outside[2:, 1:-1] | outside[1:-1, :-2] | outside[1:-1, 2:]
    return mask & near


def brute_distances(ref: np.ndarray, pred: np.ndarray, cap: float) -> np.ndarray:
    """Symmetric boundary distances (metres) by brute force over all pairs of boundary pixels."""
    a, b = np.argwhere(boundary_np(ref)) * RES, np.argwhere(boundary_np(pred)) * RES

    def directed(src, dst):
        if len(dst) == 0:
            return np.full(len(src), cap)
        d = np.sqrt(((src[:, None, :] - dst[None, :, :]) ** 2).sum(-1)).min(axis=1)
        return np.minimum(d, cap)

    return np.concatenate([directed(a, b), directed(b, a)])


def square(shape: tuple[int, int], top: int, left: int, side: int) -> np.ndarray:
    m = np.zeros(shape, np.float32)
    m[top : top + side, left : left + side] = 1
    return m


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_shifted_square_boundary_distance_is_k_pixels(k):
    shape, side = (170, 170), 120
    ref = square(shape, 20, 20, side)
    pred = square(shape, 20 + k, 20 + k, side)  # shifted diagonally: every edge moves by k pixels
    r = evaluate(on_grid(pred).chunk(64), on_grid(ref))
    # analytically: k * pixel for all but the O(k) pixels near the two corners where the edges cross
    assert r["boundary_mean_m"] == pytest.approx(k * RES, rel=0.03)
    assert r["boundary_p95_m"] == pytest.approx(k * RES)
    d = brute_distances(ref > 0, pred > 0, cap=640.0)
    assert r["boundary"]["n"] == len(d)
    assert r["boundary_mean_m"] == pytest.approx(d.mean(), rel=1e-12)
    assert r["boundary_p95_m"] == np.percentile(d, 95, method="inverted_cdf")
    assert r["boundary"]["capped_fraction"] == 0


def test_identical_masks_give_zero_distance():
    ref = square((90, 90), 10, 15, 50)
    r = evaluate(on_grid(ref).chunk(32), on_grid(ref))
    assert r["boundary_mean_m"] == 0 and r["boundary_p95_m"] == 0 and r["boundary"]["n"] > 0


@pytest.mark.parametrize("chunks", [16, 45, None])
def test_boundary_distances_match_brute_force_and_cap(scene, chunks):
    _, truth, pred = scene
    ref = truth.astype(bool)
    glacier = np.nan_to_num(pred, nan=0) >= 0.5
    mask = glacier.astype(np.float32)  # no NaN here: the brute force knows no gaps
    prob = on_grid(mask) if chunks is None else on_grid(mask).chunk(chunks)
    cap = 85.0  # not a whole number of pixels: some distances capped
    r = evaluate(prob, on_grid(truth.astype(np.float32)), max_distance_m=cap)
    d = brute_distances(ref, glacier, cap)
    assert r["boundary"]["n"] == len(d)
    assert r["boundary_mean_m"] == pytest.approx(d.mean(), rel=1e-12)
    assert r["boundary_p95_m"] == np.percentile(d, 95, method="inverted_cdf")
    assert r["boundary"]["capped_fraction"] == pytest.approx((d >= cap).mean())
    assert 0 < r["boundary"]["capped_fraction"] < 0.5


def test_non_square_pixels_distance_in_metres():
    shape = (80, 80)
    ref, pred = square(shape, 20, 20, 40), square(shape, 23, 20, 40)  # 3 rows down
    def grid(v):
        out = xr.DataArray(v, dims=("y", "x"), coords={"y": Y0 - 20.0 * (np.arange(80) + 0.5),
                                                       "x": X0 + 10.0 * (np.arange(80) + 0.5)})
        return out.rio.write_crs(CRS)
    r = evaluate(grid(pred).chunk(30), grid(ref))
    assert r["boundary"]["pred_to_ref"]["p95_m"] == pytest.approx(60.0)  # 3 rows of 20 m
    assert r["area"]["ref_km2"] == pytest.approx(40 * 40 * 200 / 1e6)


# ----------------------------------------------------------------------------- laziness


def test_building_the_graph_computes_nothing(scene, no_compute):
    gdf, truth, pred = scene
    prob = on_grid(pred).chunk(64)
    for reference in (gdf, on_grid(truth).chunk(50)):
        for objects in (True, False):
            lazy = evaluate_lazy(prob, reference, objects=objects)
            assert isinstance(lazy.counts, da.Array)
    assert isinstance(prob.data, da.Array)


def test_graph_grows_with_chunks_not_with_outlines_per_chunk(scene):
    gdf, _, pred = scene
    per_chunk = []
    for chunks in (64, 32):
        lazy = evaluate_lazy(on_grid(pred).chunk(chunks), gdf, max_distance_m=50.0)
        graph = dict(lazy.counts.__dask_graph__())
        n_chunks = np.prod(on_grid(pred).chunk(chunks).data.numblocks)
        per_chunk.append(len(graph) / n_chunks)
        # each rasterising task carries only the outlines touching its chunk
        carried = sum(len(v.args[0]) if hasattr(v, "args") else 0 for k, v in graph.items()
                      if str(k).startswith("rasterize-reference"))
        assert 0 < carried < 0.5 * len(gdf) * n_chunks
    assert per_chunk[1] < 1.5 * per_chunk[0]


def test_result_is_the_same_for_any_chunking(scene):
    gdf, _, pred = scene
    results = [evaluate(on_grid(pred).chunk(c), gdf) for c in (48, {"y": 100, "x": 130}, 1000)]
    results.append(evaluate(on_grid(pred), gdf))
    for r in results[1:]:
        assert r == results[0]


class _CacheWatch(Callback):
    """Largest total of array bytes the Dask scheduler held at once."""

    def _start(self, dsk):
        self.peak = 0

    def _posttask(self, key, result, dsk, state, id):
        self.peak = max(self.peak, sum(getattr(v, "nbytes", 0) for v in state["cache"].values()))


def test_memory_never_holds_the_whole_grid():
    """3072^2 pixels in chunks of 256: the scheduler holds about one row of chunks, not the grid."""
    n, chunk = 3072, 256

    def blobs(block_info=None):
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        yy, xx = np.mgrid[r0:r1, c0:c1]
        return (0.5 + 0.5 * np.sin(xx / 23.0) * np.sin(yy / 31.0)).astype(np.float32)

    data = da.map_blocks(blobs, chunks=((chunk,) * (n // chunk),) * 2, dtype=np.float32,
                         meta=np.empty((0, 0), np.float32))
    prob = xr.DataArray(data, dims=("y", "x"), coords={"y": Y0 - RES * (np.arange(n) + 0.5),
                                                       "x": X0 + RES * (np.arange(n) + 0.5)}).rio.write_crs(CRS)
    gdf = gpd.GeoDataFrame(geometry=[shapely.Point(X0 + 15_000, Y0 - 15_000).buffer(9_000)], crs=CRS)
    with dask.config.set(scheduler="threads", num_workers=2), _CacheWatch() as watch:
        r = evaluate(prob, gdf, max_distance_m=100.0)
    assert r["n_pixels"] == n * n and 0 < r["iou"]["glacier"] < 1
    row_of_chunks = n * chunk * (4 + 1 + 1)  # float32 prediction, uint8 codes, uint8 labels
    assert watch.peak < 2 * row_of_chunks, f"scheduler held {watch.peak / 2**20:.1f} MiB"
    assert watch.peak < 0.15 * n * n * 4


def test_task_memory_is_bounded_per_window_pixel():
    """The per-chunk task needs about 17 bytes per pixel of chunk + halo (EDT indices are 8)."""
    from glacierxr.evaluate import _Distances, _object_block

    n = 1024 + 2 * 65
    yy, xx = np.mgrid[0:n, 0:n]
    pred = ((np.sin(xx / 23) * np.sin(yy / 31)) >= 0).astype(np.uint8)
    labels = ((np.sin(xx / 29 + 1) * np.sin(yy / 37)) >= 0).astype(np.uint8)
    del yy, xx
    tracemalloc.start()
    _object_block(pred, labels, dist=_Distances(pixel_m=(10.0, 10.0), cap_m=640.0), depth=(65, 65), n_labels=1,
                  is_raster=False, block_info={0: {"chunk-location": (1, 1), "num-chunks": (3, 3)}})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 24 * n * n, f"{peak / n / n:.1f} bytes per window pixel"


def test_declared_nodata_is_excluded():
    truth = np.zeros((20, 20), np.uint8)
    truth[5:15, 5:15] = 1
    ref = truth.copy()
    ref[:, :4] = 255  # no reference there
    mask = truth.copy()
    mask[-3:] = 255  # no prediction there
    r = evaluate(on_grid(mask).rio.write_nodata(255).chunk(7), on_grid(ref).rio.write_nodata(255))
    assert r["n_excluded"] == 20 * 4 + 3 * 16 and r["n_pixels"] == 400 - r["n_excluded"]
    assert r["oa"] == 1 and r["boundary_mean_m"] == 0


def test_evaluate_and_compare_inventories_take_the_same_id_column():
    import geopandas as gpd
    import shapely

    import glacierxr as gx
    from glacierxr.evaluate import _glacier_ids

    ref = gpd.GeoDataFrame({"glac_id": ["G1", "G2"], "rgi_id": ["RGI-1", "RGI-2"]},
                           geometry=[shapely.box(0, 0, 100, 100), shapely.box(200, 0, 300, 100)], crs=32632)
    per, _ = gx.compare_inventories(ref, ref)
    assert list(per["ref_id"]) == _glacier_ids(ref, None) == ["RGI-1", "RGI-2"]
