"""What a model was trained on (sensors, resolution, units), and the check that a cube matches it.

A checkpoint records ``inputs`` (:func:`inputs_of` the training cube); :func:`check_inputs`
refuses a cube whose resolution is off by more than 1.5x or whose sensors or band units differ,
because a model fed other data still returns a confident map, just a wrong one (a Landsat 7
8-bit 30 m model on Sentinel-2 reflectance at 10 m mapped 23 "glaciers" without a word).
Refusing is the safer call than resampling: the user picks the resolution the model needs
(``resolution=`` / ``--resolution``, by default the model's) and the search is done once.
"""

from __future__ import annotations

from typing import Any

import xarray as xr

from glacierxr.errors import ModelInputError

__all__ = ["inputs_of", "check_inputs", "check_resolution", "cube_resolution", "model_resolution"]

#: Largest ratio between the cube's and the model's pixel size that is accepted.
RESOLUTION_TOLERANCE = 1.5


def cube_resolution(cube: xr.Dataset) -> float | None:
    """Pixel size in metres: ``attrs["resolution"]``, else the x coordinate spacing."""
    res = cube.attrs.get("resolution")
    if res:
        return float(res)
    if "x" in cube.coords and cube.sizes.get("x", 0) > 1:
        return float(abs(cube["x"].values[1] - cube["x"].values[0]))
    return None


def _sensors(cube: xr.Dataset) -> list[str]:
    """The sensors the cube was stacked from (``attrs["source_items"]`` of :func:`glacierxr.open_cube`)."""
    return sorted(map(str, cube.attrs.get("source_items", {}) or {}))


def inputs_of(cube: xr.Dataset, bands: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The facts about ``cube`` a checkpoint records: ``sensors``, ``resolution``, ``units`` per band."""
    return {"sensors": _sensors(cube), "resolution": cube_resolution(cube),
            "units": {b: cube[b].attrs.get("units") for b in bands if b in cube.data_vars}}


def model_resolution(model, default: float = 10.0) -> float:
    """The pixel size (m) ``model`` was trained at, or ``default`` when it does not record one."""
    return float((getattr(model, "inputs", None) or {}).get("resolution") or default)


def _resolution_problem(model, have: float | None) -> str | None:
    res = (getattr(model, "inputs", None) or {}).get("resolution")
    if res and have and not (1 / RESOLUTION_TOLERANCE <= have / res <= RESOLUTION_TOLERANCE):
        return (f"it was trained at {res:g} m, the cube has {have:g} m pixels: open the cube with "
                f"resolution={res:g} (glacierxr inventory/evaluate --resolution {res:g})")
    return None


def check_resolution(model, resolution: float) -> None:
    """Raise :class:`~glacierxr.errors.ModelInputError` if ``model`` was trained at another pixel size."""
    problem = _resolution_problem(model, float(resolution))
    if problem:
        raise ModelInputError(f"model {model.arch!r} does not fit {resolution:g} m pixels: {problem}.")


def check_inputs(model, cube: xr.Dataset) -> None:
    """Raise :class:`~glacierxr.errors.ModelInputError` if ``cube`` is not the data ``model`` was trained on.

    Facts the model or the cube does not record are not checked (an old checkpoint, a cube
    built by hand).
    """
    want = getattr(model, "inputs", None) or {}
    name = f"model {model.arch!r}"
    problems = [p for p in [_resolution_problem(model, cube_resolution(cube))] if p]
    sensors = want.get("sensors") or []
    have = _sensors(cube)
    if sensors and have and not set(sensors) & set(have):
        problems.append(f"it was trained on {', '.join(sensors)} data, the cube holds {', '.join(have)}: use a model "
                        "trained on this sensor, or fine-tune this one on it (glacierxr train --init ...)")
    units = want.get("units") or {}
    odd = [f"{b} ({units[b]} vs {cube[b].attrs['units']})" for b in model.bands
           if units.get(b) and b in cube.data_vars and cube[b].attrs.get("units")
           and units[b] != cube[b].attrs["units"]]
    if odd:
        problems.append("band units differ: " + ", ".join(odd))
    if problems:
        raise ModelInputError(f"{name} does not fit this cube: " + "; ".join(problems) + ".")
