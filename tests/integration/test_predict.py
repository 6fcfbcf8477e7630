"""predict: seam-free, chunking-independent, edge-covering, lazy; Zarr writes that resume."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import rioxarray  # noqa: F401
import torch
import xarray as xr

import glacierxr as gx
from glacierxr import store as store_module
from glacierxr.errors import InputShapeError, MissingBandError, StoreExistsError
from glacierxr.predict import d4_transforms
from glacierxr.tiling import blend_weights, window_starts

BANDS = ["B02", "B03", "B04", "B08", "B11", "NDSI", "elevation"]


@pytest.fixture(scope="module")
def cube(region, stac_url):
    items = gx.search(stac_url, bbox=region.bbox, datetime=region.datetime, sensors=("sentinel-2", "dem"))
    return gx.open_cube(items, bbox=region.bbox, chunks=512).persist()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return gx.models.create("lgt-lgcb", bands=BANDS, preset="tiny").eval()


def sliding_window_reference(cube, model, window, overlap):
    """A plain in-memory sliding window over the whole scene: the same global windows and weights."""
    x = np.stack([cube[b].values for b in model.bands]).astype(np.float32)
    missing = np.isnan(x).any(axis=0)  # not mapped: a band is missing
    stats = np.array([model.normalization[b] for b in model.bands], np.float32)
    x = np.nan_to_num((x - stats[:, 0, None, None]) / stats[:, 1, None, None])
    h, w = x.shape[1:]
    stride = window - overlap
    sy, sx = window_starts(h, window, stride), window_starts(w, window, stride)
    padded = np.zeros((x.shape[0], sy[-1] + window, sx[-1] + window), np.float32)
    padded[:, :h, :w] = x
    num = np.zeros(padded.shape[1:], np.float64)
    den = np.zeros(padded.shape[1:], np.float64)
    weight = blend_weights(window, overlap)
    with torch.inference_mode():
        for y in sy:
            for x0 in sx:
                logits = model(torch.from_numpy(padded[None, :, y : y + window, x0 : x0 + window].copy()))
                p = torch.softmax(logits, 1)[0, 1].numpy()
                num[y : y + window, x0 : x0 + window] += weight * p
                den[y : y + window, x0 : x0 + window] += weight
    return np.where(missing, np.nan, (num / den)[:h, :w])


@pytest.fixture(scope="module")
def reference(cube, model):
    return sliding_window_reference(cube, model, window=128, overlap=32)


@pytest.mark.parametrize("chunks", [128, 256, 100_000])
def test_chunkings_agree_with_the_reference(cube, model, reference, chunks):
    prob = cube.glacier.predict(model, window=128, overlap=32, batch_size=3, chunks=chunks)
    assert prob.data.numblocks == ((1, 1) if chunks > 1000 else prob.data.numblocks)
    values = prob.values
    np.testing.assert_allclose(values, reference, atol=1e-5, rtol=0)  # NaN where the reference has NaN
    assert 0 < np.isnan(values).mean() < 0.2  # the cube's no-data frame, nothing else


def test_distributed_local_cluster_agrees(cube, model, reference):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster):
        prob = cube.glacier.predict(model, window=128, overlap=32, batch_size=4, chunks=192)
        values = prob.values
    np.testing.assert_allclose(values, reference, atol=1e-5, rtol=0)


def test_result_is_lazy_with_grid_crs_and_attrs(cube, model, no_compute):
    prob = cube.glacier.predict(model, window=128, overlap=32)
    assert prob.name == "glacier_probability" and prob.dtype == np.float32
    assert prob.rio.crs == cube.rio.crs
    xr.testing.assert_equal(prob.x, cube.x)
    assert prob.attrs["model"] == "lgt-lgcb" and prob.attrs["window"] == 128 and prob.attrs["overlap"] == 32
    assert "glacierxr_version" in prob.attrs


def test_graph_is_small_and_holds_no_weights(model):
    import dask.array as dska

    lazy = xr.Dataset({b: (("y", "x"), dska.random.random((768, 768), chunks=192).astype(np.float32)) for b in BANDS},
                      coords={"y": 5.0 + 10 * np.arange(768)[::-1], "x": 5.0 + 10 * np.arange(768)})
    small = lazy.glacier.predict(model, window=128, overlap=32, chunks=192)
    large = lazy.glacier.predict(model, window=128, overlap=32, chunks=96)
    graph = pickle.dumps(dict(small.data.__dask_graph__()))
    biggest = max(model.state_dict().values(), key=lambda t: t.numel())
    assert biggest.numpy().tobytes()[:256] not in graph  # the weights travel by checkpoint path
    assert len(graph) / np.prod(small.data.numblocks) < 30_000  # bytes of graph per output chunk
    # O(chunks): tasks per output chunk stay bounded when chunks get 4x more numerous
    per_chunk = [len(dict(p.data.__dask_graph__())) / np.prod(p.data.numblocks) for p in (small, large)]
    assert per_chunk[1] < 2 * per_chunk[0]


@pytest.mark.parametrize("shape, chunks", [((300, 517), 200), ((97, 130), 64), ((260, 250), 1000)])
def test_edges_are_covered_and_missing_data_is_nan(model, shape, chunks):
    rng = np.random.default_rng(1)
    h, w = shape
    data = {b: (("y", "x"), rng.random(shape).astype(np.float32)) for b in BANDS}
    ds = xr.Dataset(data, coords={"y": 5.0 + 10 * np.arange(h)[::-1], "x": 5.0 + 10 * np.arange(w)})
    ds["B02"][:10, :10] = np.nan  # one band missing: not mapped either
    for b in BANDS:
        ds[b][-5:, -7:] = np.nan  # every band missing: NaN out
    prob = ds.chunk(chunks).glacier.predict(model, window=64, overlap=16, chunks=chunks).values
    empty = np.zeros(shape, bool)
    empty[-5:, -7:] = True
    empty[:10, :10] = True
    assert np.isnan(prob[empty]).all()
    assert not np.isnan(prob[~empty]).any()
    assert ((prob[~empty] >= 0) & (prob[~empty] <= 1)).all()


def test_band_ratio_runs_through_predict_and_tta_is_a_no_op_for_it(cube):
    br = gx.models.create("band-ratio", bands=["B03", "B04", "B08", "B11"])
    plain = cube.glacier.predict(br, window=128, overlap=0).values
    tta = cube.glacier.predict(br, window=128, overlap=0, tta=True).values
    np.testing.assert_allclose(plain, tta, atol=1e-6)
    ice = (cube.B04 / cube.B11).values > 2.5
    assert np.nanmean(plain[ice]) > 0.8 > np.nanmean(plain[~ice])


def test_d4_transforms_invert():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    outs = set()
    for fwd, inv in d4_transforms():
        assert torch.equal(inv(fwd(x)), x)
        outs.add(tuple(fwd(x).flatten().tolist()))
    assert len(outs) == 8


def test_bad_inputs_name_the_fix(cube, model):
    with pytest.raises(MissingBandError, match="VV"):
        cube.glacier.predict(gx.models.create("unet", bands=["B04", "VV"], preset="tiny"))
    with pytest.raises(InputShapeError, match="window=96 or window=128"):
        cube.glacier.predict(model, window=100)
    with pytest.raises(InputShapeError, match="overlap"):
        cube.glacier.predict(model, window=128, overlap=100)


# ----------------------------------------------------------------------------- Zarr


@pytest.fixture(scope="module")
def prob(cube, model):
    return cube.glacier.predict(model, window=128, overlap=32, chunks=128).persist()


def test_zarr_round_trip_keeps_values_and_crs(prob, tmp_path):
    path = prob.glacier.to_zarr(tmp_path / "p.zarr")
    back = xr.open_zarr(path, decode_coords="all")["glacier_probability"]
    assert back.rio.crs == prob.rio.crs
    np.testing.assert_array_equal(back.values, prob.values)
    assert back.encoding["chunks"] == tuple(c[0] for c in prob.chunks)
    small = prob.glacier.to_zarr(tmp_path / "u8.zarr", dtype="uint8")
    back8 = xr.open_zarr(small, decode_coords="all")["glacier_probability"]
    np.testing.assert_allclose(back8.values, prob.values, atol=0.5 / 250 + 1e-6)


def test_interrupted_write_is_completed_with_only_missing_chunks(prob, tmp_path, monkeypatch):
    import dask

    full = prob.glacier.to_zarr(tmp_path / "full.zarr")
    real = store_module._write_block
    calls = []

    def flaky(*args):
        if len(calls) == 5:
            raise KeyboardInterrupt("killed")
        calls.append(args[3:5])
        return real(*args)

    monkeypatch.setattr(store_module, "_write_block", flaky)
    target = tmp_path / "cut.zarr"
    with dask.config.set(scheduler="synchronous"), pytest.raises(KeyboardInterrupt):
        prob.glacier.to_zarr(target)
    status = store_module.store_status(target)
    assert status["chunks_done"] == 5 and not status["complete"]
    monkeypatch.setattr(store_module, "_write_block", lambda *a: (calls.append(a[3:5]), real(*a))[1])
    prob.glacier.to_zarr(target)  # the same call again finishes it
    total = int(np.prod(prob.data.numblocks))
    assert len(calls) == total and len(set(map(str, calls))) == total  # each chunk written once
    a = xr.open_zarr(full)["glacier_probability"].values
    b = xr.open_zarr(target)["glacier_probability"].values
    np.testing.assert_array_equal(a, b)


def test_existing_stores_are_never_overwritten_silently(prob, tmp_path):
    path = prob.glacier.to_zarr(tmp_path / "p.zarr")
    with pytest.raises(StoreExistsError, match="already complete; pass mode='w'"):
        prob.glacier.to_zarr(path)
    with pytest.raises(StoreExistsError, match="different array"):
        prob.chunk(64).glacier.to_zarr(path)
    other = tmp_path / "other.zarr"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(StoreExistsError):
        prob.glacier.to_zarr(other)
    assert (other / "keep.txt").read_text() == "mine"
    prob.glacier.to_zarr(path, mode="w")


def test_chunks_256_512_and_one_chunk_agree_on_a_larger_grid(model):
    """The issue's literal case: chunks 256, 512 and a single chunk, against the reference."""
    rng = np.random.default_rng(3)
    h, w = 1100, 900
    data = {b: (("y", "x"), rng.random((h, w)).astype(np.float32)) for b in BANDS}
    ds = xr.Dataset(data, coords={"y": 5.0 + 10 * np.arange(h)[::-1], "x": 5.0 + 10 * np.arange(w)})
    reference = sliding_window_reference(ds, model, window=256, overlap=64)
    for chunks in (256, 512, None):
        cube = ds.chunk(chunks) if chunks else ds.chunk(-1)
        values = cube.glacier.predict(model, window=256, overlap=64, batch_size=4, chunks=chunks or 10_000).values
        np.testing.assert_allclose(values, reference, atol=1e-5, rtol=0, err_msg=str(chunks))


@pytest.mark.parametrize("chunks", [128, 100_000])
def test_overlap_zero_agrees_with_the_reference(cube, model, chunks):
    reference = sliding_window_reference(cube, model, window=128, overlap=0)
    values = cube.glacier.predict(model, window=128, overlap=0, chunks=chunks).values
    np.testing.assert_allclose(values, reference, atol=1e-5, rtol=0)


def test_zarr_write_in_work_units_equals_one_shot(prob, tmp_path):
    one = xr.open_zarr(prob.glacier.to_zarr(tmp_path / "one.zarr"))["glacier_probability"].values
    units = xr.open_zarr(store_module.to_zarr(prob, tmp_path / "units.zarr", batch=2))["glacier_probability"].values
    np.testing.assert_array_equal(one, units)


@pytest.mark.parametrize(("tta", "count"), [(True, 8), (False, 1), (None, 1), (1, 1), (2, 2), (8, 8), (np.int64(4), 4)])
def test_tta_counts_exactly_as_documented(tta, count):
    from glacierxr.predict import tta_count

    assert tta_count(tta) == count
    assert tta_count(None, default=True) == 8


@pytest.mark.parametrize("tta", [0, 9, -1, 1.0, "8"])
def test_tta_out_of_range_is_refused(cube, model, tta):
    with pytest.raises(gx.errors.InvalidArgumentError, match="1..8"):
        cube.glacier.predict(model, window=128, overlap=0, tta=tta)


def test_tta_one_runs_one_transform(cube, model, monkeypatch):
    """``tta=1`` is the plain forward pass (it once meant 8, because ``1 == True``)."""
    import glacierxr.inference as p

    calls = []
    real = p.d4_transforms
    monkeypatch.setattr(p, "d4_transforms", lambda n: calls.append(n) or real(n))
    small = cube.isel(x=slice(0, 128), y=slice(0, 128))
    one = small.glacier.predict(model, window=128, overlap=0, tta=1)
    assert one.attrs["tta"] == 1
    one.compute(scheduler="sync")
    assert calls == []  # no D4 loop at all
    small.glacier.predict(model, window=128, overlap=0, tta=2).compute(scheduler="sync")
    assert calls and set(calls) == {2}
