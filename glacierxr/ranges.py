"""Synthetic mountain ranges: ridge-and-valley terrain whose catchments are known, and its glaciers.

The world :func:`glacierxr.synthetic.make_region` draws with ``terrain="range"`` (the default):

* **A main crest** crosses the region at a random angle, meandering, with peaks along it; the
  ground falls away on both sides with the concave long profile of glacial valleys.
* **Spurs** branch off the crest on both sides every 1.2-2.8 km (their own spacing and skew per
  side, domain-warped so no two are alike); between two spurs lies a valley with a U-shaped
  cross profile whose floor rises to a cirque headwall at the crest. The spurs get lower away
  from the crest.
* **Catchments** are known by construction: a pixel's catchment is its side of the crest and
  the valley between the two spurs around it. Ice divides in the truth are where one connected
  ice mass spans two catchments: across the crest (cols with ice flowing both ways) or over a
  low spur (transfluence).
* **Glaciers** come from the surface mass balance routed downslope
  (:func:`glacierxr.synthetic._glaciers`, the same code as the older massif world): valley
  glaciers fill the valleys below cirques, small cirque and hanging glaciers sit on the spurs'
  flanks, steep rock stays bare and long tongues are debris-covered.

:func:`glacier_entities` splits the ice into truth glaciers (connected ice within one
catchment) and complexes (connected ice); :func:`size_stats` summarises a set of glaciers the way
``benchmarks/bench_ranges.py`` compares them with the Everest scene (RGI 6.0, 86 glaciers on
472 km²).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["range_terrain", "glacier_entities", "size_stats", "EVEREST"]

#: The reference: RGI 6.0 glaciers of the Landsat 7 Everest scene (``shared/data/real/everest_landsat7``).
EVEREST = {"per_100km2": 18.2, "glacierised": 0.54, "q10": 0.06, "q25": 0.12, "q50": 0.35, "q75": 1.6, "q90": 12.6}


def _fbm1(rng: np.random.Generator, n: int, beta: float) -> np.ndarray:
    """1-D fractal noise by spectral synthesis, zero mean, unit std."""
    k = np.fft.rfftfreq(n)
    k[0] = 1.0
    amp = k ** (-beta / 2)
    amp[0] = 0.0
    f = np.fft.irfft(amp * rng.normal(size=k.size) * np.exp(1j * rng.uniform(0, 2 * np.pi, k.size)), n=n)
    return (f - f.mean()) / (f.std() + 1e-12)


def range_terrain(rng: np.random.Generator, shape: tuple[int, int], res: float) -> tuple[np.ndarray, np.ndarray]:
    """Elevation (m) and catchment labels (1..n) of a ridge-and-valley range; see the module docstring."""
    from glacierxr.synthetic import _fbm

    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    xs, ys = (xx - w / 2) * res, (h / 2 - yy) * res
    theta = rng.uniform(-0.6, 0.6) + (math.pi / 2 if rng.random() < 0.5 else 0.0)
    u = xs * math.cos(theta) + ys * math.sin(theta)  # along the range
    v = -xs * math.sin(theta) + ys * math.cos(theta)  # across it
    span = float(np.hypot(h, w) * res)
    n1 = 512
    grid_u = np.linspace(-span / 2, span / 2, n1)
    crest_v = np.interp(u, grid_u, 0.05 * span * _fbm1(rng, n1, 3.6) + rng.uniform(-0.1, 0.1) * span)
    crest_z = np.interp(u, grid_u, 250.0 * _fbm1(rng, n1, 4.5))
    d = v - crest_v
    side = d >= 0
    a = np.abs(d)
    # spurs: valleys between them, per side; a domain warp bends them
    warp = 300.0 * _fbm(rng, shape, beta=4.4)
    catch = np.zeros(shape, np.int32)
    t = np.zeros(shape)
    first = 1
    for s in (False, True):
        spacing = rng.uniform(1200.0, 2800.0)
        skew = rng.uniform(-0.5, 0.5)
        q = (u + skew * a + warp) / spacing + rng.uniform(0, 1)
        k = np.floor(q)
        here = side == s
        t[here] = (q - k)[here]
        k = k[here].astype(np.int64)
        catch[here] = first + k - k.min()
        first = int(catch[here].max()) + 1
    # the crest runs 5,700-6,200 m; valley floors fall from cirque headwalls with a concave long profile
    top = 5950.0 + crest_z * np.exp(-a / 3000.0)
    floor = top - 2300.0 * (1.0 - np.exp(-a / 4500.0)) - 350.0 * (1.0 - np.exp(-a / 600.0))
    # spurs between the valleys: aretes over flat-floored troughs, lower away from the crest and
    # growing out of it (no step where the two sides' spurs meet)
    relief = (550.0 * np.exp(-a / 6000.0) + 150.0) * (1.0 - np.exp(-a / 700.0))
    z = floor + relief * np.abs(2 * t - 1) ** 2.5
    # side ridges on the valley walls: cirques and hanging valleys between them
    flank = np.abs(2 * t - 1)
    wall = catch * 2 + (t > 0.5)
    phase = rng.uniform(0, 1, int(wall.max()) + 1)[wall]
    pitch = rng.uniform(600.0, 1100.0)
    rib = np.abs(2 * ((a / pitch + phase) % 1.0) - 1) ** 2
    z += 280.0 * np.exp(-a / 8000.0) * flank**1.5 * rib * (1.0 - np.exp(-a / 500.0))
    z += 90.0 * _fbm(rng, shape, beta=3.8)
    z += 220.0 * np.clip(1.0 - np.abs(_fbm(rng, shape, beta=4.4)) / 2.5, 0, 1) ** 2  # peaks
    z += 3.0 * _fbm(rng, shape, beta=2.4)
    return z, catch


def glacier_entities(ice: np.ndarray, catchments: np.ndarray, min_px: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Truth glaciers and complexes of an ice mask.

    Parameters
    ----------
    ice
        Boolean glacier mask.
    catchments
        Catchment label per pixel (any integers).
    min_px
        Parts of a catchment's ice smaller than this join the glacier of the same complex they
        share the longest border with (a sliver of ice over a divide is no glacier).

    Returns
    -------
    glaciers, complexes
        int32 label rasters (0: no ice): one label per glacier (connected ice within one
        catchment) and one per connected ice mass (8-neighbour).
    """
    from glacierxr.divides import _merge_small, _relabel

    eight = np.ones((3, 3), bool)
    complexes, _ = ndimage.label(ice, structure=eight)
    key = np.where(ice, catchments.astype(np.int64) * (complexes.max() + 1) + complexes, 0)
    parts = np.zeros(ice.shape, np.int32)
    offset = 0
    for value in np.unique(key[key > 0]):  # connected pieces of each (catchment, complex)
        lab, n = ndimage.label(key == value, structure=eight)
        parts[lab > 0] = lab[lab > 0] + offset
        offset += n
    glaciers = np.zeros(ice.shape, np.int32)
    top = 0
    for c, sl in enumerate(ndimage.find_objects(complexes), start=1):  # slivers merge inside their complex
        inside = complexes[sl] == c
        merged = _merge_small(_relabel(np.where(inside, parts[sl], 0)), min_px)
        glaciers[sl][inside] = merged[inside] + top
        top += int(merged.max())
    return glaciers, complexes.astype(np.int32)


def size_stats(areas_km2: np.ndarray, region_km2: float) -> dict[str, float]:
    """Glacier density, glacierised fraction and area quantiles of a set of glaciers.

    Returns
    -------
    dict
        ``n``, ``per_100km2``, ``glacierised`` (fraction of ``region_km2``) and ``q10`` ..
        ``q90`` (area quantiles, km²), the keys of :data:`EVEREST`.
    """
    a = np.asarray(areas_km2, dtype=float)
    out = {"n": int(a.size), "per_100km2": 100.0 * a.size / region_km2, "glacierised": float(a.sum() / region_km2)}
    for q in (10, 25, 50, 75, 90):
        out[f"q{q}"] = float(np.quantile(a, q / 100)) if a.size else float("nan")
    return out
