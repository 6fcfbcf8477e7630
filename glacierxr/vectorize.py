"""Raster -> glacier polygons, chunk by chunk, stitched across chunk borders.

Each chunk is polygonised on its own (in parallel, with Dask) in *integer pixel coordinates*,
so pieces of one glacier cut by a chunk border share their border edges exactly. Only the
pieces that touch an internal chunk border are stitched (a union of the pieces that share an
edge); everything else is final as it comes. Memory holds one chunk of pixels per worker and
the polygons, never the whole raster.

Conventions:

* A glacier is a **4-connected** set of pixels (pixels touching only at a corner are separate
  glaciers). The same rule inside chunks and across borders is what makes the result
  independent of the chunking.
* Holes (nunataks) are kept; holes smaller than ``min_hole_km2`` (default 0.01 km², the
  smallest unit mapped in most glacier inventories, e.g. Paul et al. 2009's minimum size) are
  filled, since at 10 m they are mostly misclassified pixels, not rock outcrops.
* Polygons smaller than ``min_area_km2`` (default 0.05 km², as in Peng et al. 2023's inventory)
  are dropped after stitching, so a glacier cut by a chunk border is judged whole.
* Optional simplification is topology-preserving (shapely) and never coarser than half a pixel.
* ``labels=True`` vectorises an integer label raster (e.g. glaciers separated by ice divides):
  each positive value is one glacier, adjacent values are not merged.
"""

from __future__ import annotations

from collections.abc import Iterable

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import shapely
import shapely.affinity
import xarray as xr
from affine import Affine
from rasterio import features
from scipy import ndimage
from shapely.geometry import Polygon, shape

from glacierxr.errors import CRSError, InvalidArgumentError

__all__ = ["outlines", "raster_pieces", "canonical"]

_FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])
#: Pixel space is shifted by one pixel: rasterio warns on an identity transform (chunk at 0, 0).
_SHIFT = 1


def _pieces(block: np.ndarray, r0: int, c0: int, frame: tuple[int, int, int, int], threshold: float,
            labels: bool, with_stats: bool) -> list[tuple]:
    """Polygons of one chunk in global pixel coordinates, with stats and a border flag.

    ``frame`` is ``(top, left, bottom, right)`` of the whole raster in the same pixel
    coordinates; a piece touching a chunk edge that is not a frame edge is a border piece.
    Returns tuples ``(polygon, value, sum, count, touches_internal_border)``.
    """
    if labels:
        ids = np.where(np.isfinite(block), block, 0).astype(np.int64)
        ids[ids < 0] = 0
        comp = None
    else:
        mask = np.nan_to_num(block, nan=0.0) >= threshold
        comp, _ = ndimage.label(mask, structure=_FOUR)
        ids = comp
    if not ids.any():
        return []
    h, w = block.shape
    sums = counts = None
    if with_stats and comp is not None:
        index = np.arange(1, comp.max() + 1)
        values = np.nan_to_num(block.astype(np.float64), nan=0.0)
        sums = ndimage.sum(values, comp, index)
        counts = ndimage.sum(np.ones_like(values), comp, index)
    offset = Affine.translation(c0 + _SHIFT, r0 + _SHIFT)
    out = []
    # no `mask=`: rasterio wraps the mask in a dataset whose warning suppression is not
    # thread-safe; value 0 (background) is skipped here instead
    shapes = features.shapes(ids.astype(np.int32), transform=offset, connectivity=4)
    for geom, value in shapes:
        if value == 0:
            continue
        poly = shape(geom)
        x0, y0, x1, y1 = (v - _SHIFT for v in poly.bounds)
        top, left, bottom, right = frame
        border = (y0 == r0 and r0 > top) or (x0 == c0 and c0 > left) or (y1 == r0 + h and r0 + h < bottom) or (
            x1 == c0 + w and c0 + w < right)
        v = int(value)
        s, n = (float(sums[v - 1]), float(counts[v - 1])) if sums is not None else (0.0, 0.0)
        out.append((poly, v if labels else 0, s, n, bool(border)))
    return out


def _stitch(pieces: list[tuple]) -> list[tuple]:
    """Union the border pieces that share an edge (and a label value); pass the others through."""
    final = [p for p in pieces if not p[4]]
    border = [p for p in pieces if p[4]]
    if not border:
        return final
    geoms = [p[0] for p in border]
    tree = shapely.STRtree(geoms)
    parent = list(range(len(border)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    left, right = tree.query(geoms, predicate="intersects")
    for i, j in zip(left, right, strict=True):
        if i < j and border[i][1] == border[j][1]:
            shared = geoms[i].intersection(geoms[j])
            if shared.length > 0:  # an edge, not a corner: 4-connectivity
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(border)):
        groups.setdefault(find(i), []).append(i)
    for members in groups.values():
        if len(members) == 1:
            final.append(border[members[0]])
            continue
        merged = shapely.union_all([geoms[i] for i in members])
        s = sum(border[i][2] for i in members)
        n = sum(border[i][3] for i in members)
        final.append((merged, border[members[0]][1], s, n, False))
    return final


def _fill_small_holes(poly, min_hole: float):
    if min_hole <= 0:
        return poly
    parts = getattr(poly, "geoms", [poly])
    kept = [Polygon(p.exterior, [r for r in p.interiors if Polygon(r).area >= min_hole]) for p in parts]
    return kept[0] if len(kept) == 1 else shapely.MultiPolygon(kept)


def _metric_area_km2(gdf: gpd.GeoDataFrame) -> np.ndarray:
    crs = gdf.crs
    if crs.is_geographic or (crs.axis_info and crs.axis_info[0].unit_name not in ("metre", "meter")):
        gdf = gdf.to_crs(gdf.estimate_utm_crs())
    return gdf.geometry.area.to_numpy() / 1e6


def canonical(poly_px):
    """A pixel-space polygon in one canonical form: collinear vertices dropped, then normalised.

    Pieces stitched across chunk or tile borders keep vertices where the border was; this form
    makes a glacier's geometry independent of where the borders were.
    """
    return shapely.normalize(shapely.simplify(poly_px, 0.0))


def raster_pieces(data: da.Array, *, origin: tuple[int, int] = (0, 0), threshold: float = 0.5
                  ) -> list[tuple[object, float, float, bool]]:
    """4-connected glacier polygons of a float raster in lattice pixel coordinates, stitched across its chunks.

    Parameters
    ----------
    data
        ``(y, x)`` probability (or 0/1) raster, Dask-backed; its chunks are polygonised in parallel.
    origin
        ``(row, col)`` of the raster's top-left pixel on a larger lattice (e.g. a UTM zone's), so
        that rasters cut from one lattice give polygons whose shared edges coincide exactly.
    threshold
        Glacier where ``value >= threshold``.

    Returns
    -------
    list of tuple
        ``(polygon, sum, count, touches_edge)`` per glacier: the polygon in lattice pixel
        coordinates (x = column, y = row, in :func:`canonical` form), the sum of the raster's
        values and the pixel count over it (for a mean probability), and whether it touches
        the raster's outer edge (a piece whose glacier may continue beyond it).
    """
    r_org, c_org = origin
    height, width = data.shape
    frame = (r_org, c_org, r_org + height, c_org + width)
    rows, cols = np.cumsum((0,) + data.chunks[0]), np.cumsum((0,) + data.chunks[1])
    blocks = data.to_delayed()
    tasks = [
        dask.delayed(_pieces)(blocks[i, j], r_org + int(rows[i]), c_org + int(cols[j]), frame, threshold, False, True)
        for i in range(blocks.shape[0]) for j in range(blocks.shape[1])
    ]
    merged = _stitch([p for chunk in dask.compute(*tasks) for p in chunk])
    out = []
    for poly, _, s, n, _ in merged:
        x0, y0, x1, y1 = (v - _SHIFT for v in poly.bounds)
        edge = y0 == r_org or x0 == c_org or y1 == r_org + height or x1 == c_org + width
        out.append((canonical(shapely.affinity.translate(poly, -_SHIFT, -_SHIFT)), s, n, bool(edge)))
    return out


def outlines(
    raster: xr.DataArray,
    *,
    threshold: float = 0.5,
    min_area_km2: float = 0.05,
    simplify: float | None = None,
    min_hole_km2: float = 0.01,
    labels: bool = False,
    dem: xr.DataArray | None = None,
) -> gpd.GeoDataFrame:
    """Glacier polygons of a probability raster, a 0/1 mask or an integer label raster.

    Parameters
    ----------
    raster
        ``(y, x)`` DataArray with a CRS (rioxarray), NumPy- or Dask-backed; e.g. the output of
        ``cube.glacier.predict``. Chunks are polygonised in parallel.
    threshold
        Pixels with values ``>= threshold`` are glacier (ignored with ``labels=True``).
    min_area_km2
        Drop glaciers smaller than this after stitching (0 keeps all).
    simplify
        Topology-preserving simplification tolerance in CRS units; at most half a pixel.
    min_hole_km2
        Fill holes (nunataks) smaller than this; 0 keeps every hole.
    labels
        Treat the raster as integer glacier ids: one glacier per positive value.
    dem
        Split the connected ice masses into glaciers at their ice divides on this DEM
        (:func:`glacierxr.divides.split_glaciers`); each row then has the ``complex_id`` of its
        mass and the mass's ``mean_probability``. ``min_area_km2`` applies to the masses.

    Returns
    -------
    geopandas.GeoDataFrame
        In the raster's CRS, sorted by decreasing area: ``geometry`` (valid Polygon, or
        MultiPolygon for a label split into parts), ``area_km2``; ``mean_probability`` for a
        float raster (mean of its values over the glacier's pixels); ``label`` with ``labels=True``.

    Raises
    ------
    CRSError
        When the raster has no CRS.
    InvalidArgumentError
        On dims other than ``(y, x)``, a non-finite threshold, negative minimum areas or a
        simplification coarser than half a pixel.
    """
    import rioxarray  # noqa: F401

    if not isinstance(raster, xr.DataArray):
        raise InvalidArgumentError(
            f"outlines needs an xarray.DataArray (e.g. cube.glacier.predict(...)), not {type(raster).__name__}."
        )
    if raster.dims != ("y", "x"):
        raise InvalidArgumentError(f"outlines needs a 2-D (y, x) raster; this one has dims {raster.dims}.")
    for option, value, hint in (("threshold", threshold, "e.g. 0.5"), ("min_area_km2", min_area_km2, "0 keeps all"),
                                ("min_hole_km2", min_hole_km2, "0 keeps every hole")):
        if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not np.isfinite(value) or (
                option != "threshold" and value < 0):
            kind = "a finite number" if option == "threshold" else "a non-negative number of km²"
            raise InvalidArgumentError(f"{option}={value!r} must be {kind} ({hint}).")
    crs = raster.rio.crs
    if crs is None:
        raise CRSError(
            "The raster has no CRS, so outlines could not be placed on the map; attach one with "
            "raster.rio.write_crs('EPSG:xxxx')."
        )
    transform = raster.rio.transform()
    pixel = min(abs(transform.a), abs(transform.e))
    if simplify is not None and not (0 <= simplify <= pixel / 2):
        raise InvalidArgumentError(
            f"simplify={simplify} is coarser than half a pixel ({pixel / 2:g} CRS units); use at most {pixel / 2:g}."
        )
    data = raster.data if isinstance(raster.data, da.Array) else da.from_array(np.asarray(raster.data), chunks=-1)
    height, width = data.shape
    with_stats = not labels and np.issubdtype(data.dtype, np.floating)
    rows, cols = np.cumsum((0,) + data.chunks[0]), np.cumsum((0,) + data.chunks[1])
    blocks = data.to_delayed()
    tasks = [
        dask.delayed(_pieces)(blocks[i, j], int(rows[i]), int(cols[j]), (0, 0, height, width), threshold, labels,
                              with_stats)
        for i in range(blocks.shape[0]) for j in range(blocks.shape[1])
    ]
    pieces = [p for chunk in dask.compute(*tasks) for p in chunk]
    merged = _stitch(pieces)
    gdf = _to_frame(merged, transform, crs, labels, with_stats)
    if len(gdf) == 0:  # no glacier (e.g. an all-NaN raster): the same columns, no rows
        return gdf.assign(area_km2=np.zeros(0, dtype=np.float64))
    metric = not crs.is_geographic  # holes are measured in m^2; a geographic raster keeps them all
    gdf["geometry"] = [_fill_small_holes(g, min_hole_km2 * 1e6 if metric else 0.0) for g in gdf.geometry]
    if simplify:
        gdf["geometry"] = gdf.geometry.simplify(simplify, preserve_topology=True)
    gdf["geometry"] = gdf.geometry.make_valid()
    gdf["area_km2"] = _metric_area_km2(gdf)
    gdf = gdf[gdf["area_km2"] >= min_area_km2]
    if dem is not None and len(gdf):
        from glacierxr.divides import split_glaciers

        gdf = split_glaciers(gdf.drop(columns="area_km2"), dem)
        gdf["area_km2"] = _metric_area_km2(gdf)
    gdf = gdf.assign(_x=gdf.geometry.bounds.minx, _y=gdf.geometry.bounds.maxy)
    gdf = gdf.sort_values(["area_km2", "_y", "_x"], ascending=[False, False, True]).drop(columns=["_x", "_y"])
    return gdf.reset_index(drop=True)


def _to_frame(merged: Iterable[tuple], transform: Affine, crs, labels: bool, with_stats: bool) -> gpd.GeoDataFrame:
    """Pixel-space pieces -> a GeoDataFrame in the raster's CRS (dissolving labels into one row each)."""
    merged = list(merged)
    a, b, c, d, e, f = transform[:6]
    matrix = [a, b, d, e, c - _SHIFT * (a + b), f - _SHIFT * (d + e)]
    geoms = [shapely.affinity.affine_transform(p[0], matrix) for p in merged]
    frame = {"geometry": geoms}
    if labels:
        frame["label"] = [p[1] for p in merged]
    if with_stats:
        frame["_sum"] = [p[2] for p in merged]
        frame["_n"] = [p[3] for p in merged]
    gdf = gpd.GeoDataFrame(frame, geometry="geometry", crs=crs)
    if labels and len(gdf):
        gdf = gdf.dissolve(by="label").reset_index()
    if with_stats:
        gdf["mean_probability"] = (gdf["_sum"] / gdf["_n"].where(gdf["_n"] > 0)).astype("float32")
        gdf = gdf.drop(columns=["_sum", "_n"])
    return gdf
