"""Map a model over a datacube: global windows, batched, blended, lazy, on Dask.

``predict(cube, model)`` returns a lazy ``glacier_probability`` DataArray on the cube's grid.
The math of windows and weights lives in :mod:`glacierxr.tiling`; this module moves data:

1. Bands are selected and ordered as the model wants, stacked ``(band, y, x)`` and re-chunked
   so every chunk boundary is a window start (chunk sizes multiples of the stride).
2. Stage 1, one task per chunk plus a bottom/right halo of ``overlap`` px (copied strips of
   its neighbours, see :func:`_halo_strips`):
   normalise, fill missing values, run the windows that start in the chunk in batches (with
   optional D4 test-time augmentation) and accumulate ``weight * p(glacier)`` and ``weight``
   over the chunk plus its ``overlap`` spill.
3. Stage 2, one task per chunk: add the spill of the chunks above, left and above-left, divide,
   and put NaN where any input band is missing: a pixel the model cannot see whole is not
   mapped (a model never saw zero-filled bands in training; filling them made a false-glacier
   frame around every region, where only the DEM reaches).

The model reaches the tasks as a :class:`ModelHandle`: a checkpoint path and a token. Each
process loads the weights once (cached by token); its forward passes all run on one thread, the
model's :class:`~glacierxr.inference.Runner`, which merges the chunks' batches (so batches span
chunks) and, on a GPU, overlaps host work, copies and compute. No weights are in the task graph,
whose size is O(chunks).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr

from glacierxr.errors import GridError, InvalidArgumentError, MissingBandError
from glacierxr.inference import d4_transforms, run_windows
from glacierxr.tiling import aligned_chunks, blend_weights, check_tiling, window_starts

__all__ = ["predict", "ModelHandle", "handle_for", "model_token", "resolve_device", "run_windows", "d4_transforms"]

_CACHE: dict[tuple[str, str], object] = {}
_CACHE_LOCK = threading.Lock()


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is present, else ``"cpu"``; other names pass through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@dataclass(frozen=True)
class ModelHandle:
    """A small picklable reference to a model: where its checkpoint is and how to run it."""

    token: str
    """Content hash of the weights and configuration."""
    path: str
    """Checkpoint path; must be readable by every worker (a shared filesystem on clusters)."""
    device: str = "auto"
    """``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ..."""
    precision: str = "auto"
    """``"auto"`` (bf16 autocast on CUDA, float32 on CPU), ``"bf16"`` or ``"fp32"``."""

    compile: bool = False
    """Run the model through ``torch.compile`` (see :mod:`glacierxr.inference`)."""

    def model(self):
        """The model, loaded once per process and device."""
        from glacierxr.models import load

        device = resolve_device(self.device)
        key = (self.token, device)
        with _CACHE_LOCK:
            if key not in _CACHE:
                _CACHE[key] = load(self.path, map_location=device).eval()
            return _CACHE[key]

    def runner(self, batch_size: int):
        """This process's :class:`~glacierxr.inference.Runner` of the model (one thread per model and device)."""
        from glacierxr.inference import runner

        model = self.model()
        param = next(iter(model.parameters()), None)
        device = str(param.device) if param is not None else resolve_device(self.device)
        return runner((self.token,), lambda: model, device=device, precision=self.precision,
                      batch_size=batch_size, compile=self.compile)


def model_token(model) -> str:
    """Content hash of a model's architecture, bands, normalisation and weights."""
    h = hashlib.sha256()
    h.update(json.dumps({"arch": model.arch, "config": model.config, "bands": list(model.bands),
                         "normalization": {k: list(v) for k, v in model.normalization.items()}},
                        sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def handle_for(model, *, device: str = "auto", precision: str = "auto", cache_dir: str | Path | None = None,
               compile: bool = False) -> ModelHandle:
    """Save ``model`` once as a checkpoint (keyed by its content hash) and return a handle to it.

    In this process the live model is registered in the cache, so the threaded scheduler never
    reloads it; other processes load the checkpoint once.
    """
    from glacierxr.models import save

    if precision not in ("auto", "bf16", "fp32"):
        raise InvalidArgumentError(f"precision={precision!r} must be 'auto', 'bf16' or 'fp32'.")
    token = model_token(model)
    folder = Path(cache_dir or Path(tempfile.gettempdir()) / "glacierxr-models")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model.arch}-{token}.pt"
    if not path.exists():
        tmp = path.with_suffix(".tmp.pt")
        save(model, tmp)
        tmp.replace(path)
        mlm = tmp.parent / (tmp.name + ".mlm.json")
        if mlm.exists():
            mlm.replace(path.parent / (path.name + ".mlm.json"))
    handle = ModelHandle(token, str(path), device, precision, compile)
    resolved = resolve_device(device)
    with _CACHE_LOCK:
        _CACHE.setdefault((token, resolved), model.to(resolved).eval())
    return handle


def tta_count(tta: bool | int | None, *, default: bool = False) -> int:
    """How many D4 transforms ``tta`` asks for: ``True`` 8, ``False`` 1, ``None`` 8 or 1 by ``default``, an int 1..8.

    Raises
    ------
    InvalidArgumentError
        For any other value (``0``, ``9``, a float or a string).
    """
    if tta is None:
        return 8 if default else 1
    if isinstance(tta, bool):  # before int: True == 1 and False == 0
        return 8 if tta else 1
    if isinstance(tta, (int, np.integer)) and 1 <= tta <= 8:
        return int(tta)
    raise InvalidArgumentError(f"tta={tta!r} must be True (8 transforms), False (none), None (the model's "
                               "default_tta) or a number of D4 transforms 1..8.")


def _stage1(core, halo, *, iy, ix, handle, mean, std, window, overlap, stride, starts_y, starts_x, batch_size, tta,
            chunks_y, chunks_x):
    """Weighted sums (3, ch + overlap, cw + overlap) of the windows starting in this chunk.

    ``core`` is the chunk (band, ch, cw); ``halo`` its neighbours' bottom, right and bottom-right
    strips, or ``()``. Channels: sum of weight * p(glacier), sum of weight, and the missing-data
    flag (any band NaN or infinite). The windows go to the process's model runner
    (:mod:`glacierxr.inference`).

    Inner chunks end on a window start, so their windows spill at most ``overlap`` pixels; the
    last chunk of an axis can spill further, but only past the array's end, which is dropped.
    """
    r0, c0 = int(np.sum(chunks_y[:iy])), int(np.sum(chunks_x[:ix]))
    ch, cw = chunks_y[iy], chunks_x[ix]
    ys = starts_y[(starts_y >= r0) & (starts_y < r0 + ch)] - r0
    xs = starts_x[(starts_x >= c0) & (starts_x < c0 + cw)] - c0
    if not len(ys) or not len(xs):
        out = np.zeros((3, ch + overlap, cw + overlap), np.float32)
        out[2, :ch, :cw] = (~np.isfinite(core)).any(axis=0)
        return out
    size_y, size_x = max(ch + overlap, int(ys[-1]) + window), max(cw + overlap, int(xs[-1]) + window)
    padded = _normalised(core, halo, mean, std, (size_y, size_x))
    missing = ~np.isfinite(padded)
    np.copyto(padded, 0.0, where=missing)
    out = np.zeros((3, size_y, size_x), np.float32)
    # channel 2 flags core pixels where a band is missing; computed here so that stage 2
    # does not need the input block, which can then be freed as soon as this task is done
    out[2, :ch, :cw] = missing[:, :ch, :cw].any(axis=0)
    del missing
    weight = blend_weights(window, overlap) if overlap else None

    def blend(batch, prob):
        for (y, x0), p in zip(batch, prob.result(), strict=True):
            if weight is None:  # windows tile the chunk exactly: no sums needed
                out[0, y : y + window, x0 : x0 + window] = p
                out[1, y : y + window, x0 : x0 + window] = 1.0
            else:
                out[0, y : y + window, x0 : x0 + window] += weight * p
                out[1, y : y + window, x0 : x0 + window] += weight

    # On a GPU, one batch waits in the runner's queue while this thread stacks the next and blends
    # the last. On CPU the model's threads already use every core: host work beside them would
    # only preempt them, so each batch is blended before the next is stacked.
    run = handle.runner(batch_size)
    ahead = run.device.type != "cpu"
    origins = [(y, x0) for y in ys for x0 in xs]
    queued = None
    for b in range(0, len(origins), batch_size):
        batch = origins[b : b + batch_size]
        windows = np.stack([padded[:, y : y + window, x0 : x0 + window] for y, x0 in batch])
        submitted = (batch, run.submit(windows, tta=tta))
        if queued is not None:
            blend(*queued)
        queued = submitted
        if not ahead:
            blend(*queued)
            queued = None
    if queued is not None:
        blend(*queued)
    return out[:, : ch + overlap, : cw + overlap]


def _normalised(core, halo, mean, std, size: tuple[int, int]) -> np.ndarray:
    """(core plus halo - mean) / std in one new (band, *size) buffer, zero past the halo.

    The pieces are normalised straight into their places: no concatenated copy of the block.
    """
    c, h, w = core.shape
    parts = [(core, 0, 0)]
    if halo:
        below, right, diagonal = halo
        parts += [(right, 0, w), (below, h, 0), (diagonal, h, w)]
    extent = (h + (halo[0].shape[1] if halo else 0), w + (halo[1].shape[2] if halo else 0))
    padded = (np.empty if extent == size else np.zeros)((c, *size), np.float32)
    for piece, y, x in parts:
        view = padded[:, y : y + piece.shape[1], x : x + piece.shape[2]]
        np.subtract(piece, mean[:, None, None], out=view)
        view /= std[:, None, None]
    return padded


def _stage1_with_halo(core, *halo_and_location, **kwargs):
    """Stage 1 on a chunk plus the copied bottom, right and bottom-right halo strips of its neighbours.

    The last positional argument is a 1 x 1 block holding the chunk's flat index (row-major);
    with ``overlap == 0`` there are no strips.
    """
    *halo, location = halo_and_location
    iy, ix = divmod(int(location[0, 0]), len(kwargs["chunks_x"]))
    return _stage1(core, tuple(halo), iy=iy, ix=ix, **kwargs)


def _stage2(core, below, right, corner, *, overlap):
    """Add the spill of the neighbouring chunks and divide; NaN where a band is missing."""
    num, den = core[0], core[1]
    if overlap:  # the core block is also read by the neighbours' crops: add into copies
        num, den = num.copy(), den.copy()
        h, w = num.shape
        num[: min(overlap, h), :] += below[0][:h]
        den[: min(overlap, h), :] += below[1][:h]
        num[:, : min(overlap, w)] += right[0][:, :w]
        den[:, : min(overlap, w)] += right[1][:, :w]
        num[: min(overlap, h), : min(overlap, w)] += corner[0][:h, :w]
        den[: min(overlap, h), : min(overlap, w)] += corner[1][:h, :w]
    prob = np.full(num.shape, np.nan, np.float32)
    np.divide(num, den, out=prob, where=(den > 0) & (core[2] < 0.5))
    return np.clip(prob, 0.0, 1.0, out=prob)


def _crop(a: np.ndarray, *, ys: slice, xs: slice) -> np.ndarray:
    # a copy, not a view: a view of a strip would pin the whole chunk buffer in memory until
    # the neighbour that needs the strip runs, and memory would grow with the region's width
    return a[:, ys, xs].copy()


def _unshift(strip: da.Array, axis: int) -> da.Array:
    """Move each chunk's strip to the chunk before it along ``axis``; the last chunk gets NaN.

    NaN is "no data": past the array's end it is normalised to 0 like the rest of the padding.
    """
    chunks = list(strip.chunks)
    chunks[axis] = (strip.chunks[axis][0],)
    last = da.full(tuple(sum(c) for c in chunks), np.nan, dtype=strip.dtype, chunks=tuple(chunks))
    if strip.numblocks[axis] == 1:
        return last
    index = [slice(None)] * strip.ndim
    index[axis] = slice(1, None)
    return da.concatenate([strip.blocks[tuple(index)], last], axis=axis)


def _halo_strips(stack: da.Array, overlap: int) -> tuple[da.Array, da.Array, da.Array]:
    """The bottom, right and bottom-right halo of every chunk, as *copied* strips of its neighbours.

    ``dask.array.overlap`` slices halos as views, and a 64-row view keeps the neighbour's whole
    chunk in memory until the next row of chunks runs (memory then grows with the width of the
    region); copies let each chunk go as soon as its own task and its strips are done.
    """
    c, (cy, cx) = stack.shape[0], stack.chunks[1:]
    sy, sx = tuple(min(overlap, n) for n in cy), tuple(min(overlap, n) for n in cx)
    top = stack.map_blocks(_crop, ys=slice(0, overlap), xs=slice(None), chunks=((c,), sy, cx), dtype=stack.dtype)
    left = stack.map_blocks(_crop, ys=slice(None), xs=slice(0, overlap), chunks=((c,), cy, sx), dtype=stack.dtype)
    corner = stack.map_blocks(_crop, ys=slice(0, overlap), xs=slice(0, overlap), chunks=((c,), sy, sx),
                              dtype=stack.dtype)
    return _unshift(top, 1), _unshift(left, 2), _unshift(_unshift(corner, 1), 2)


def _shift(spill: da.Array, axis: int) -> da.Array:
    """Move each chunk's spill to the chunk after it along ``axis`` (zeros into the first)."""
    chunks = list(spill.chunks)
    chunks[axis] = (spill.chunks[axis][0],)
    first = da.zeros(tuple(sum(c) for c in chunks), dtype=np.float32, chunks=tuple(chunks))
    if spill.numblocks[axis] == 1:
        return first
    index = [slice(None)] * spill.ndim
    index[axis] = slice(None, -1)
    return da.concatenate([first, spill.blocks[tuple(index)]], axis=axis)


class _DefaultInt(int):
    """An int default that can be told apart from the same value passed explicitly."""

    __slots__ = ()


_WINDOW_DEFAULT = _DefaultInt(512)


def _resolve_window(window: int, tile: int | None, *, stacklevel: int) -> int:
    """The window size from ``window=`` or the deprecated ``tile=`` alias (never both)."""
    if tile is None:
        return 512 if window is _WINDOW_DEFAULT else window
    if window is not _WINDOW_DEFAULT:
        raise InvalidArgumentError(
            f"predict got both window={window!r} and tile={tile!r}; tile= is the deprecated name of window=, "
            "pass only window=."
        )
    warnings.warn(
        f"tile= is deprecated, use window= (predict(..., window={tile!r})): the window is the model's input "
        "size; 'tile' now means a production tile of the regional pipeline.",
        FutureWarning, stacklevel=stacklevel + 1,
    )
    return tile


def predict(
    cube: xr.Dataset,
    model,
    *,
    window: int = _WINDOW_DEFAULT,
    overlap: int = 64,
    batch_size: int = 8,
    device: str = "auto",
    tta: bool | int | None = None,
    precision: str = "auto",
    chunks: int | None = None,
    tile: int | None = None,
    check_inputs: bool = True,
    compile: bool = False,
) -> xr.DataArray:
    """Glacier probability of every pixel of ``cube``, lazily.

    Parameters
    ----------
    cube
        Datacube with the model's bands (e.g. from :func:`glacierxr.open_cube`).
    model
        A glacierxr model, or a name or path that :func:`glacierxr.models.resolve` turns into
        one: ``"band-ratio"``, a shipped checkpoint (``"lgt-lgcb.synth-s2"``), a checkpoint path.
    window
        Side of a prediction window (the model's input) in pixels; a multiple of the model's
        ``output_stride``. Default 512.
    overlap
        Pixels shared by neighbouring windows (at most ``window // 2``); their outputs are blended
        with a smooth ramp so no seam shows.
    batch_size
        Windows per forward pass.
    device
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda[:N]"``.
    tta
        Test-time augmentation: ``True`` for the 8 flips/rotations of D4, an int for the first
        N of them, ``False`` for none; ``None`` uses the model's ``default_tta``.
    precision
        ``"auto"`` (bf16 autocast on CUDA, float32 on CPU), ``"bf16"`` or ``"fp32"``.
    chunks
        Target chunk size in pixels (rounded to a multiple of the stride); the cube's by default.
    tile
        Deprecated alias of ``window`` (emits a :class:`FutureWarning`); "tile" now means a
        production tile of the regional pipeline.
    check_inputs
        Refuse a cube whose resolution, sensors or band units differ from what the model was
        trained on (:func:`glacierxr.models.inputs.check_inputs`); ``False`` skips the check.
    compile
        Run the model through ``torch.compile`` (pays off on a GPU over many windows; on CPU the
        first call compiles for a while).

    Returns
    -------
    xarray.DataArray
        ``glacier_probability`` (y, x), float32 in [0, 1], NaN where any input band is missing,
        on the cube's grid with its CRS; attrs name the model, window, overlap and version. The
        result does not depend on the chunking. A band that is NaN or infinite makes the pixel NaN.

    Raises
    ------
    MissingBandError
        When the cube lacks a band the model needs.
    ModelInputError
        When the cube is not the kind of data the model was trained on (resolution, sensors, units).
    InputShapeError
        When ``window`` is not a multiple of the output stride or ``overlap`` is out of range.
    GridError
        When ``chunks`` is not a positive number of pixels.
    InvalidArgumentError
        When ``cube`` is not a Dataset, when both ``window`` and ``tile`` are given, or on another
        invalid option.
    """
    import glacierxr

    # point the deprecation warning at the user's line, also through cube.glacier.predict
    via_accessor = sys._getframe(1).f_globals.get("__name__") == "glacierxr.accessor"
    window = _resolve_window(window, tile, stacklevel=3 if via_accessor else 2)
    if not isinstance(cube, xr.Dataset):
        hint = " (e.g. stacked.to_dataset('band'))" if isinstance(cube, xr.DataArray) else ""
        raise InvalidArgumentError(
            f"predict needs an xarray.Dataset with one variable per band, as gx.open_cube returns; got a "
            f"{type(cube).__name__}. Convert it to a Dataset{hint} first."
        )
    if chunks is not None and (isinstance(chunks, bool) or not isinstance(chunks, int | np.integer) or chunks <= 0):
        raise GridError(f"chunks={chunks!r} must be a positive number of pixels (e.g. 2048), or None for the cube's.")
    if isinstance(model, str | Path):
        from glacierxr.models.resolve import resolve

        model = resolve(model)
    bands = list(model.bands)
    missing = [b for b in bands if b not in cube.data_vars]
    if missing:
        raise MissingBandError(
            f"The cube lacks band(s) {missing} that model {model.arch!r} needs (it uses {bands}); the cube has "
            f"{list(cube.data_vars)}. Add the sensor to the search, or create the model with bands= the cube has."
        )
    if check_inputs:
        from glacierxr.models.inputs import check_inputs as check

        check(model, cube)
    stride = check_tiling(window, overlap, model.output_stride)
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise InvalidArgumentError(f"batch_size={batch_size!r} must be a positive integer, e.g. 8.")
    n_tta = tta_count(tta, default=bool(getattr(model, "default_tta", False)))
    handle = handle_for(model, device=device, precision=precision, compile=bool(compile))

    h, w = cube.sizes["y"], cube.sizes["x"]
    first = cube[bands[0]]
    target = chunks or (first.chunks[0][0] if first.chunks else 2048)
    cy, cx = aligned_chunks(h, target, stride, window), aligned_chunks(w, target, stride, window)
    stack = cube[bands].to_array("band").data
    # task-based rechunk: a P2P shuffle is far slower for this neighbour-to-neighbour move
    stack = da.asarray(stack).astype(np.float32).rechunk((len(bands), cy, cx), method="tasks")
    norm = np.array([model.normalization[b] for b in bands], dtype=np.float32)
    mean, std = norm[:, 0], np.where(norm[:, 1] > 0, norm[:, 1], 1.0).astype(np.float32)

    halo = [a for strip in _halo_strips(stack, overlap) for a in (strip, "kyx")] if overlap else []
    location = da.from_array(np.arange(len(cy) * len(cx)).reshape(len(cy), len(cx)), chunks=1)
    # blockwise without aligning chunks: the halo strips are thinner than the chunks they extend
    sums = da.blockwise(
        _stage1_with_halo, "kyx", stack, "kyx", *halo, location, "yx",
        align_arrays=False, concatenate=True, dtype=np.float32,
        adjust_chunks={"k": lambda _: 3, "y": lambda n: n + overlap, "x": lambda n: n + overlap},
        meta=np.empty((0, 0, 0), np.float32), name=f"glacier-windows-{handle.token[:8]}",
        handle=handle, mean=mean, std=std, window=window, overlap=overlap, stride=stride,
        starts_y=window_starts(h, window, stride), starts_x=window_starts(w, window, stride),
        batch_size=batch_size, tta=n_tta, chunks_y=cy, chunks_x=cx,
    )
    o = overlap
    if o:
        def part(ys: slice, xs: slice, chunks) -> da.Array:
            return sums.map_blocks(_crop, ys=ys, xs=xs, chunks=chunks, dtype=np.float32)

        oy, ox = (o,) * len(cy), (o,) * len(cx)
        core = part(slice(None, -o), slice(None, -o), ((3,), cy, cx))
        below = _shift(part(slice(-o, None), slice(None, -o), ((3,), oy, cx)), 1)
        right = _shift(part(slice(None, -o), slice(-o, None), ((3,), cy, ox)), 2)
        corner = _shift(_shift(part(slice(-o, None), slice(-o, None), ((3,), oy, ox)), 1), 2)
    else:
        core = below = right = corner = sums
    prob = da.blockwise(
        _stage2, "yx", core, "kyx", below, "kyx", right, "kyx", corner, "kyx",
        overlap=o, dtype=np.float32, concatenate=True, align_arrays=False,
        meta=np.empty((0, 0), np.float32),
    )
    out = xr.DataArray(prob, dims=("y", "x"), coords={"y": cube.y, "x": cube.x}, name="glacier_probability")
    if "spatial_ref" in cube.coords:
        out = out.assign_coords(spatial_ref=cube.spatial_ref)
        out.attrs["grid_mapping"] = "spatial_ref"
    out.attrs.update(
        long_name="probability of glacier ice", units="1", model=model.arch, model_preset=getattr(model, "preset", ""),
        model_token=handle.token, bands=bands, window=window, overlap=overlap, tta=n_tta,
        glacierxr_version=glacierxr.__version__,
    )
    return out

