"""The ``.glacier`` accessors on xarray objects: each method *is* a module function.

``cube.glacier.predict(model, ...)`` is :func:`glacierxr.predict.predict` with the cube as its
first argument: the same signature, defaults and docstring, so an accessor cannot drift from
the function it stands for (the idea of odc-geo's wrapped operations). The module is imported
on first use, so ``import glacierxr`` stays light.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any

import xarray as xr

__all__ = ["GlacierDatasetAccessor", "GlacierDataArrayAccessor"]


class _Function:
    """An accessor attribute that is ``module.name`` with the accessor's object bound first."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name
        self.__doc__ = f"``{module}.{name}`` with this object as its first argument."

    def function(self):
        return getattr(importlib.import_module(self.module), self.name)

    def __get__(self, accessor: Any, owner: type | None = None):
        if accessor is None:
            return self
        func = self.function()

        @functools.wraps(func)
        def method(*args, **kwargs):
            return func(accessor._obj, *args, **kwargs)

        sig = inspect.signature(func)
        method.__signature__ = sig.replace(parameters=list(sig.parameters.values())[1:])  # type: ignore[attr-defined]
        return method


@xr.register_dataset_accessor("glacier")
class GlacierDatasetAccessor:
    """``cube.glacier``: glacier mapping on a datacube."""

    predict = _Function("glacierxr.predict", "predict")

    def __init__(self, obj: xr.Dataset) -> None:
        self._obj = obj


@xr.register_dataarray_accessor("glacier")
class GlacierDataArrayAccessor:
    """``prob.glacier``: outputs of a glacier probability (or mask) raster."""

    to_zarr = _Function("glacierxr.store", "to_zarr")
    outlines = _Function("glacierxr.vectorize", "outlines")
    evaluate = _Function("glacierxr.evaluate", "evaluate")

    def __init__(self, obj: xr.DataArray) -> None:
        self._obj = obj
