"""predict's ``window=`` option and its deprecated alias ``tile=``."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
import torch
import xarray as xr

import glacierxr as gx
from glacierxr.errors import InputShapeError, InvalidArgumentError
from glacierxr.predict import predict

BANDS = ["B03", "B04", "B08", "B11"]


@pytest.fixture(scope="module")
def cube():
    rng = np.random.default_rng(0)
    h, w = 150, 170
    data = {b: (("y", "x"), rng.random((h, w)).astype(np.float32)) for b in BANDS}
    return xr.Dataset(data, coords={"y": 5.0 + 10 * np.arange(h)[::-1], "x": 5.0 + 10 * np.arange(w)}).chunk(96)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return gx.models.create("lgt-lgcb", bands=BANDS, preset="tiny").eval()


def test_window_is_the_option_and_512_the_default():
    params = inspect.signature(predict).parameters
    assert params["window"].default == 512 and repr(params["window"].default) == "512"
    assert params["tile"].default is None


def test_window_works_and_is_recorded_in_attrs(cube, model):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation warning for window=
        prob = cube.glacier.predict(model, window=64, overlap=16)
    assert prob.attrs["window"] == 64 and prob.attrs["overlap"] == 16 and "tile" not in prob.attrs
    values = prob.values
    assert values.shape == (150, 170) and ((values >= 0) & (values <= 1)).all()
    with pytest.raises(InputShapeError, match=r"window=100 must be .* use window=96 or window=128"):
        cube.glacier.predict(model, window=100)


@pytest.mark.parametrize("call", ["accessor", "function"])
def test_tile_warns_and_gives_the_identical_result(cube, model, call):
    run = cube.glacier.predict if call == "accessor" else (lambda m, **kw: predict(cube, m, **kw))
    expected = run(model, window=64, overlap=16)
    with pytest.warns(FutureWarning, match="tile= is deprecated, use window=") as record:
        old = run(model, tile=64, overlap=16)
    assert [w.filename for w in record] == [__file__]  # the warning points at the caller's line
    assert old.attrs == expected.attrs
    np.testing.assert_array_equal(old.values, expected.values)


def test_window_and_tile_together_are_refused(cube, model):
    for window in (64, 512):  # also the default's value, passed explicitly
        with pytest.raises(InvalidArgumentError, match="both window=.* and tile="):
            cube.glacier.predict(model, window=window, tile=64)


def test_experiment_config_reads_the_old_tile_key_as_window():
    from glacierxr.training.experiment import _renamed_keys

    assert _renamed_keys({"window": 128, "overlap": 32}, "cfg") == {"window": 128, "overlap": 32}
    with pytest.warns(FutureWarning, match="tile = ... is deprecated, use window = ..."):
        assert _renamed_keys({"tile": 256, "overlap": 32}, "cfg") == {"window": 256, "overlap": 32}
    with pytest.raises(InvalidArgumentError, match="both window and its deprecated alias tile"):
        _renamed_keys({"tile": 256, "window": 128}, "cfg")


def test_store_fingerprint_of_a_prediction_is_unchanged_by_the_rename(cube, model):
    from glacierxr.store import _fingerprint

    prob = cube.glacier.predict(model, window=64, overlap=16)
    before = prob.copy()
    before.attrs = {("tile" if k == "window" else k): v for k, v in prob.attrs.items()}
    assert _fingerprint(prob, "p", "float32") == _fingerprint(before, "p", "float32")
    other = prob.copy()
    other.attrs = {**prob.attrs, "window": 128}
    assert _fingerprint(other, "p", "float32") != _fingerprint(prob, "p", "float32")
