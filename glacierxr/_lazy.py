"""Lazy package namespaces (PEP 562), so that ``import glacierxr`` does not load torch or geopandas.

``import glacierxr`` is paid by every Dask worker and every CLI call; the public names are still
``gx.open_cube``, ``gx.models.create``, …, but each is imported from its module on first use.

Three names are both a function and the submodule that defines it (``gx.search``,
``gx.evaluate``, ``gx.inventory``). Importing a submodule normally rebinds the package attribute to
the module; :class:`_LazyPackage` keeps the function there instead, as the eager imports did.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Iterable, Mapping

__all__ = ["lazy_namespace"]


class _LazyPackage(types.ModuleType):
    """A package module whose same-named functions win over their submodules."""

    def __setattr__(self, name: str, value: object) -> None:
        if (isinstance(value, types.ModuleType) and value.__name__ == f"{self.__name__}.{name}"
                and self.__dict__.get("_lazy_attributes", {}).get(name) == value.__name__):
            value = getattr(value, name)
        super().__setattr__(name, value)


def lazy_namespace(package: str, attributes: Mapping[str, str],
                   submodules: Iterable[str] = ()) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` that import its public names on first use.

    Parameters
    ----------
    package
        The package's ``__name__``.
    attributes
        Public name -> the module that defines it (``{"open_cube": "glacierxr.cube"}``).
    submodules
        Submodules reachable as attributes (``gx.models``) without an explicit import.

    Returns
    -------
    tuple
        ``(__getattr__, __dir__)`` to bind in the package's namespace.
    """
    module = sys.modules[package]
    namespace = vars(module)
    namespace["_lazy_attributes"] = dict(attributes)
    module.__class__ = _LazyPackage
    submodules = frozenset(submodules)

    def __getattr__(name: str) -> object:
        if name in attributes:
            value = getattr(importlib.import_module(attributes[name]), name)
        elif name in submodules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(attributes) | submodules)

    return __getattr__, __dir__
