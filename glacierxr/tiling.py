"""Windows, chunk alignment and blend weights: the pure-NumPy math of tiled inference.

Every prediction window lives on one *global* grid: window ``k`` along an axis of length ``n``
starts at ``k * stride`` (``stride = window - overlap``) and there are just enough windows to cover
the axis (the count is rounded up; the last window may run past the end, where the input is
padded). Because the window grid does not depend on how the array is chunked, neither does the
result. Each chunk runs the windows that *start* in it; the part of a window that spills past
the chunk's end (at most ``overlap`` pixels when chunk sizes are multiples of ``stride``) is
added into the next chunk afterwards ("overlap-add"), so no window is ever run twice.

Window outputs are blended with a smooth weight that is 1 in the window's interior and falls
off with a squared-sine ramp across the ``overlap`` pixels at each edge; the blended value is
the weighted sum divided by the summed weights.
"""

from __future__ import annotations

import math

import numpy as np

from glacierxr.errors import InputShapeError

__all__ = ["window_starts", "aligned_chunks", "ramp", "blend_weights", "check_tiling"]


def check_tiling(window: int, overlap: int, output_stride: int) -> int:
    """Validate the prediction ``window`` size and ``overlap`` for a model; return the window stride.

    Raises
    ------
    InputShapeError
        When ``window`` is not a positive multiple of ``output_stride`` (naming the nearest valid
        sizes) or ``overlap`` is negative or leaves no stride.
    """
    if not isinstance(window, int | np.integer) or window <= 0 or window % output_stride:
        lo = (max(output_stride, (int(window) // output_stride) * output_stride)
              if isinstance(window, int | np.integer) else output_stride)
        hi = lo + output_stride
        raise InputShapeError(
            f"window={window!r} must be a positive multiple of the model's output stride {output_stride}; "
            f"use window={lo} or window={hi}."
        )
    if not isinstance(overlap, int | np.integer) or overlap < 0 or overlap > window // 2:
        raise InputShapeError(
            f"overlap={overlap!r} must be a whole number of pixels between 0 and half the window "
            f"({window // 2}); e.g. overlap={min(64, window // 4)}."
        )
    return int(window - overlap)


def window_starts(n: int, window: int, stride: int) -> np.ndarray:
    """Global start offsets of the windows covering ``[0, n)`` (count rounded up)."""
    count = 1 + max(0, math.ceil((n - window) / stride))
    return np.arange(count, dtype=np.int64) * stride


def aligned_chunks(n: int, chunk: int, stride: int, window: int) -> tuple[int, ...]:
    """Chunk sizes along an axis of length ``n``: multiples of ``stride``, each at least ``window``.

    ``chunk`` is rounded to the nearest multiple of ``stride`` (at least ``ceil(window / stride)``
    strides), so every chunk boundary is a window start and a window spills into one chunk only.
    The last chunk takes the remainder.
    """
    k = max(round(chunk / stride), math.ceil(window / stride), 1)
    size = k * stride
    full, rest = divmod(n, size)
    sizes = (size,) * full + ((rest,) if rest else ())
    return sizes or (n,)


def ramp(window: int, overlap: int) -> np.ndarray:
    """1-D blend weight: 1 inside, a squared-sine ramp over ``overlap`` pixels at each edge.

    Never exactly zero, so a pixel covered by a single window keeps its value.
    """
    w = np.ones(window, dtype=np.float64)
    if overlap > 0:
        i = np.arange(overlap, dtype=np.float64)
        edge = np.sin(0.5 * np.pi * (i + 0.5) / overlap) ** 2
        w[:overlap] = np.minimum(w[:overlap], edge)
        w[window - overlap :] = np.minimum(w[window - overlap :], edge[::-1])
    return w


def blend_weights(window: int, overlap: int) -> np.ndarray:
    """2-D blend weight (``window x window``, float32): the outer product of :func:`ramp` with itself."""
    r = ramp(window, overlap)

    return np.outer(r, r).astype(np.float32)
