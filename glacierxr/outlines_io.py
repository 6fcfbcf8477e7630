"""Glacier outlines as inputs: one rule for what counts as outlines and for their ids.

Every function that takes outlines (``evaluate``'s reference, ``train``'s labels,
``compare_inventories``) reads them with :func:`read_outlines` and names them with
:data:`ID_COLUMNS`, so the same file gives the same polygons and the same ids everywhere.
"""

from __future__ import annotations

import os
from typing import Any

from glacierxr.errors import InvalidArgumentError, OutlinesNotFoundError

__all__ = ["read_outlines", "ID_COLUMNS", "id_column_of"]

#: Columns tried, in order, for the glacier ids of outlines (else the row index): the inventory's
#: own ids first (RGI 7, RGI 6), then GLIMS ids, then glacierxr's ``glac_id``.
ID_COLUMNS = ("rgi_id", "RGIId", "glims_id", "GLIMSId", "glac_id", "id")


def read_outlines(outlines: Any, *, name: str = "outlines"):
    """Outlines as a GeoDataFrame.

    Parameters
    ----------
    outlines
        A GeoDataFrame (returned as it is), a GeoSeries, or the path of a vector file that
        :func:`geopandas.read_file` reads (GeoPackage, Shapefile, GeoJSON, ...).
    name
        What the outlines are, for messages (``"reference outlines"``).

    Raises
    ------
    OutlinesNotFoundError
        When the path does not exist (a :class:`FileNotFoundError`).
    InvalidArgumentError
        For anything else.
    """
    import geopandas as gpd

    if isinstance(outlines, gpd.GeoDataFrame):
        return outlines
    if isinstance(outlines, gpd.GeoSeries):
        return gpd.GeoDataFrame(geometry=outlines)
    if isinstance(outlines, str | os.PathLike):
        if not os.path.exists(outlines):
            raise OutlinesNotFoundError(f"{name} file {os.fspath(outlines)!r} does not exist; check the path.")
        return gpd.read_file(outlines)
    raise InvalidArgumentError(
        f"{name} must be a GeoDataFrame, a GeoSeries or the path of a vector file; got {type(outlines).__name__}."
    )


def id_column_of(frame: Any, id_column: str | None = None, *, name: str = "outlines") -> str | None:
    """The column holding the glacier ids: ``id_column`` (checked), else the first of :data:`ID_COLUMNS`.

    Returns None when there is none (use the row index).
    """
    if id_column is not None:
        if id_column not in frame.columns:
            raise InvalidArgumentError(
                f"id_column={id_column!r} is not a column of the {name}; its columns are {list(frame.columns)}."
            )
        return id_column
    return next((c for c in ID_COLUMNS if c in frame.columns), None)
