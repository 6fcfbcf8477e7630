"""A Zarr write killed while it creates the store's metadata is started again, not refused."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from glacierxr.errors import StoreExistsError
from glacierxr.store import store_status, to_zarr


def _array() -> xr.DataArray:
    values = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 4096
    return xr.DataArray(values, dims=("y", "x"), coords={"y": np.arange(64.0), "x": np.arange(64.0)},
                        name="glacier_probability").chunk(32)


def test_a_write_killed_while_creating_the_store_starts_again(tmp_path):
    store = tmp_path / "p.zarr"
    meta = tmp_path / "p.zarr.progress"
    # what a kill between "metadata being written" and "fingerprint recorded" leaves behind
    meta.mkdir()
    (meta / "creating").write_text("")
    store.mkdir()
    (store / "zarr.json").write_text("{")  # half-written metadata
    to_zarr(_array(), store)
    assert store_status(store)["complete"] and not (meta / "creating").exists()
    np.testing.assert_array_equal(xr.open_zarr(store)["glacier_probability"].values, _array().values)


def test_a_foreign_store_is_still_refused(tmp_path):
    store = tmp_path / "p.zarr"
    store.mkdir()
    (store / "zarr.json").write_text("{}")  # someone else's store, no glacierxr marker
    with pytest.raises(StoreExistsError, match="holds a different array"):
        to_zarr(_array(), store)
