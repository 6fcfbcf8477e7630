"""``import glacierxr`` stays light (torch, geopandas, rasterio load on first use) without changing the API."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "geopandas", "rasterio", "rioxarray", "stackstac", "pystac_client", "zarr", "shapely")


def _python(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_import_loads_no_heavy_library():
    loaded = _python(f"import json, sys, glacierxr; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert loaded == []


def test_pipeline_and_cli_do_not_load_torch():
    loaded = _python("import json, sys, glacierxr.pipeline, glacierxr.cli, glacierxr.models.inputs; "
                     "print(json.dumps([m for m in ('torch', 'geopandas') if m in sys.modules]))")
    assert loaded == []


@pytest.mark.parametrize("first", ["", "import glacierxr.search, glacierxr.evaluate, glacierxr.inventory; "])
def test_functions_win_over_their_same_named_submodules(first):
    # importing the submodule (before or after the package) must not turn gx.search into a module
    kinds = _python(first + "import json, glacierxr as gx, glacierxr.search, glacierxr.evaluate, glacierxr.inventory; "
                    "print(json.dumps([type(getattr(gx, n)).__name__ for n in ('search', 'evaluate', 'inventory')]))")
    assert kinds == ["function", "function", "function"]


def test_every_public_name_resolves():
    import glacierxr as gx

    for name in gx.__all__:
        assert getattr(gx, name) is not None, name
    for name in gx.models.__all__:
        assert getattr(gx.models, name) is not None, name
    assert set(gx.__all__) <= set(dir(gx))
    assert gx.models.create is gx.models.registry.create
    assert gx.cube.open_cube is gx.open_cube


def test_unknown_attribute_says_so():
    import glacierxr as gx

    with pytest.raises(AttributeError, match="no attribute 'open_cubes'"):
        gx.open_cubes  # noqa: B018
    with pytest.raises(AttributeError, match="glacierxr.models"):
        gx.models.nope  # noqa: B018


def test_accessor_methods_are_the_module_functions():
    import importlib
    import inspect

    import numpy as np
    import xarray as xr

    import glacierxr  # noqa: F401  (registers the accessors)

    prob = xr.DataArray(np.zeros((2, 2), np.float32), dims=("y", "x"))
    cube = xr.Dataset({"B03": prob})
    for obj, module, name in ((cube, "glacierxr.predict", "predict"), (prob, "glacierxr.store", "to_zarr"),
                              (prob, "glacierxr.vectorize", "outlines"), (prob, "glacierxr.evaluate", "evaluate")):
        func = getattr(importlib.import_module(module), name)
        method = getattr(obj.glacier, name)
        assert method.__doc__ == func.__doc__ and method.__wrapped__ is func
        expected = list(inspect.signature(func).parameters)[1:]
        assert list(inspect.signature(method).parameters) == expected  # e.g. to_zarr's batch, evaluate's id_column
