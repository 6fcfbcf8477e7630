"""glacierxr: lazy, Dask-native glacier mapping from STAC imagery."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("glacierxr")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

from glacierxr import errors  # noqa: E402

__all__ = ["__version__", "errors"]
