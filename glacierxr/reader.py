"""A stackstac reader that reads grid-aligned assets directly instead of warping them.

stackstac warps every asset whose grid is not *identical* to the whole output grid through a
GDAL ``WarpedVRT``, even when the asset is already on the output grid's pixel lattice (same CRS,
an integer multiple of the pixel size, pixel edges on the lattice). That is the normal case
for Sentinel-2 and Sentinel-1 RTC tiles on a UTM grid, and the warp costs several times the read.

:class:`AlignedReader` reads such assets with a plain windowed read and, for coarser assets
(Sentinel-2 B11 and SCL at 20 m onto 10 m), repeats pixels: exactly what GDAL's nearest
resampling gives on aligned grids. Same-resolution aligned assets are returned as they are,
which is also what bilinear resampling gives there. Everything else (other CRS, e.g. the
geographic DEM; non-integer factors; bilinear upsampling) goes through stackstac's own reader
unchanged.

Both paths retry. GDAL itself retries HTTP 429/5xx answers and reset connections within one
request (``GDAL_HTTP_MAX_RETRY``, set by :func:`glacierxr.cube.gdal_env`); when a whole open or
read still fails with an error that looks transient, :class:`AlignedReader` drops its datasets,
waits with exponential backoff and jitter, and tries again with GDAL's ``/vsicurl/`` cache
bypassed for that file (GDAL remembers a failed open and would otherwise answer the retry from
memory, without a request). The policy (:class:`RetryPolicy`) travels with the GDAL environment
(:class:`ReadEnv`) that stackstac hands every reader. A read that keeps failing, or fails for a
permanent reason (HTTP 404/403, a missing local file), raises
:class:`~glacierxr.errors.AssetReadError` naming the asset: never a chunk of fill values.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.windows import Window
from stackstac.raster_spec import RasterSpec
from stackstac.rio_env import LayeredEnv
from stackstac.rio_reader import AutoParallelRioReader

from glacierxr.errors import AssetReadError, InvalidArgumentError

__all__ = ["AlignedReader", "ReadEnv", "RetryPolicy", "alignment", "is_transient"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

_TOL = 1e-6
_WARP_TOLERANCE = 1e-6
"""Largest error (pixels) of GDAL's approximate warp transformer; GDAL's default is 0.125."""


@dataclass
class _ExactWarpSpec(RasterSpec):
    """A stackstac ``RasterSpec`` whose ``WarpedVRT`` maps every pixel exactly.

    GDAL's warper interpolates the coordinate transformation linearly over pieces of the output
    grid as long as the error stays under ``tolerance`` (0.125 pixel by default), and the pieces
    depend on the extent of that grid: the same output pixel of two production tiles' grids then
    samples the source at points up to 0.125 pixel apart (0.8 m of elevation on a steep DEM). The
    ice-divide split and the inventory of a glacier must not depend on which tile read its DEM, so
    warped assets use an exact transformation (tolerance 1e-6 pixel); it costs little next to the
    read, as the DEM is the only asset that is warped on a regional run.
    """

    @property
    def vrt_params(self) -> dict:
        return {**super().vrt_params, "tolerance": _WARP_TOLERANCE}


def _plain_mask(src) -> float | None | bool:
    """How band 1 of ``src`` marks invalid pixels: ``None`` (it has none), its nodata value (a
    plain comparison finds them), or ``False`` (a mask GDAL must read or compute)."""
    from rasterio.enums import MaskFlags

    flags = src.mask_flag_enums[0]
    if flags == [MaskFlags.all_valid]:
        return None
    # only types float32 holds exactly: a wider one's values could round onto the nodata value
    exact = np.dtype(src.dtypes[0]) in (np.int8, np.uint8, np.int16, np.uint16, np.float32)
    if flags == [MaskFlags.nodata] and src.nodata is not None and exact:
        return src.nodata
    return False


def alignment(src_transform, src_crs_epsg: int | None, dst_transform, dst_epsg: int, resampling: Resampling):
    """``(k, row_off, col_off)`` when the source sits on the destination's pixel lattice, else ``None``.

    ``k`` is the source pixel size in destination pixels; the offsets are where the source's
    top-left corner falls, in destination pixels.
    """
    if src_crs_epsg != dst_epsg:
        return None
    a, b, c, d, e, f = src_transform[:6]
    A, _, C, _, E, F = dst_transform[:6]
    if b or d or a <= 0 or e >= 0 or A <= 0 or E >= 0:
        return None
    k = a / A
    if abs(k - round(k)) > _TOL or abs(-e / A - k) > _TOL or round(k) < 1:
        return None
    k = round(k)
    if k > 1 and resampling != Resampling.nearest:
        return None
    col_off, row_off = (c - C) / A, (F - f) / A
    if abs(col_off - round(col_off)) > _TOL or abs(row_off - round(row_off)) > _TOL:
        return None
    return k, round(row_off), round(col_off)


# ----------------------------------------------------------------------------- retry policy


@dataclass(frozen=True)
class RetryPolicy:
    """How hard reads try: GDAL's own HTTP retries, then whole open/read attempts by glacierxr.

    Parameters
    ----------
    attempts
        Open-and-read attempts per chunk of an asset (1: no retry of ours). Each attempt also
        gets GDAL's ``http_max_retry`` retries of each HTTP request.
    backoff
        Seconds before the second attempt; doubled for each further one (with 50-100% jitter).
    max_backoff
        Cap of the wait between attempts, in seconds.
    http_max_retry
        ``GDAL_HTTP_MAX_RETRY``: GDAL's retries of one HTTP request answered 429/5xx or cut off.
    http_retry_delay
        ``GDAL_HTTP_RETRY_DELAY``: GDAL's first wait in seconds (it grows exponentially).
    http_timeout
        ``GDAL_HTTP_TIMEOUT``: seconds one HTTP request may take.
    http_connect_timeout
        ``GDAL_HTTP_CONNECTTIMEOUT``: seconds to establish a connection.
    """

    attempts: int = 4
    backoff: float = 1.0
    max_backoff: float = 16.0
    http_max_retry: int = 3
    http_retry_delay: float = 0.5
    http_timeout: float = 30.0
    http_connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.http_max_retry < 0:
            raise InvalidArgumentError(
                f"RetryPolicy(attempts={self.attempts}, http_max_retry={self.http_max_retry}): attempts must be >= 1 "
                "and http_max_retry >= 0."
            )
        if (min(self.backoff, self.max_backoff, self.http_retry_delay) < 0
                or min(self.http_timeout, self.http_connect_timeout) <= 0):
            raise InvalidArgumentError("RetryPolicy delays must be >= 0 and timeouts > 0 (seconds).")

    def wait(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.backoff * 2 ** (attempt - 1), self.max_backoff) * random.uniform(0.5, 1.0)


class ReadEnv(LayeredEnv):
    """stackstac's layered GDAL environment, carrying glacierxr's retry policy and asset labels.

    stackstac passes its ``gdal_env`` to every reader it makes (and pickles it with them), so
    this is how :class:`AlignedReader` learns how to retry and what to call an asset in errors.

    Parameters
    ----------
    always, open, open_vrt, read
        GDAL options per situation, as in :class:`stackstac.rio_env.LayeredEnv`.
    retry
        The retry policy of the readers.
    labels
        Asset href -> a human name for errors, e.g. ``"band 'B04' of item 'S2B_...'"``.
    """

    def __init__(
        self,
        always: Mapping[str, Any],
        open: Mapping[str, Any] | None = None,  # noqa: A002  (stackstac's name)
        open_vrt: Mapping[str, Any] | None = None,
        read: Mapping[str, Any] | None = None,
        *,
        retry: RetryPolicy | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(dict(always), dict(open or {}), dict(open_vrt or {}), dict(read or {}))
        self.retry = retry or RetryPolicy()
        self.labels = dict(labels or {})

    def updated(self, always=None, open=None, open_vrt=None, read=None) -> ReadEnv:  # noqa: A002
        """A copy with more GDAL options per situation (keeps the policy and labels)."""
        base = super().updated(always=always, open=open, open_vrt=open_vrt, read=read)
        return ReadEnv(*LayeredEnv.__getstate__(base), retry=self.retry, labels=self.labels)

    def with_labels(self, labels: Mapping[str, str]) -> ReadEnv:
        """A copy naming these assets (href -> label) in errors."""
        return ReadEnv(*LayeredEnv.__getstate__(self), retry=self.retry, labels={**self.labels, **labels})

    def __getstate__(self):
        return (*super().__getstate__(), self.retry, self.labels)

    def __setstate__(self, state) -> None:
        *layers, retry, labels = state
        self.__init__(*layers, retry=retry, labels=labels)


_HTTP_CODE = re.compile(r"HTTP response code: *(\d{3})")
_RETRYABLE_4XX = {408, 429}
_PERMANENT_LOCAL = ("No such file or directory", "does not exist in the file system",
                    "not recognized as being in a supported file format",
                    "not recognized as a supported file format", "Permission denied")


_REMOTE = re.compile(r"(?:^|/)(?:https?|s3|gs|az|abfs|ftp)://|/vsi(?:curl|s3|gs|az|adls|oss|swift)")
_REMOTE_PREFIXES = ":".join(f"/vsi{fs}/" for fs in ("curl", "s3", "gs", "az", "adls", "oss", "swift"))


def _is_remote(url: str) -> bool:
    """Whether GDAL reads ``url`` over the network (also inside ``vrt://`` connection strings)."""
    return bool(_REMOTE.search(url))


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__]
    return seen


def is_transient(exc: BaseException, url: str) -> bool | None:
    """Whether a failed open/read of ``url`` is worth retrying.

    Returns
    -------
    bool or None
        None when ``exc`` is not a GDAL/rasterio I/O error at all (a bug or a bad input: not
        ours to wrap); False for permanent failures (HTTP 4xx other than 408/429, a missing or
        unreadable local file); True for everything else GDAL raised (5xx, resets, timeouts,
        truncated answers).
    """
    chain = _chain(exc)
    if not any(isinstance(e, (RasterioIOError, CPLE_BaseError)) for e in chain):
        return None
    text = " | ".join(str(e) for e in chain)
    codes = {int(c) for c in _HTTP_CODE.findall(text)}
    if any(400 <= c < 500 and c not in _RETRYABLE_4XX for c in codes):
        return False
    return _is_remote(url) or not any(s in text for s in _PERMANENT_LOCAL)


def _advice(transient: bool, text: str) -> str:
    if re.search(r"\b40[13]\b", text):
        return ("Access was denied: check the credentials or URL signing for this catalogue (e.g. "
                "planetary_computer.sign for Planetary Computer items).")
    if not transient:
        return ("The file is not at that address: the catalogue may be stale or the asset moved. Search again, "
                "or leave this item out of the items given to open_cube.")
    return ("The server kept failing. Check the network and the server's status, then compute again; on a flaky "
            "connection allow more tries with open_cube(..., retry=RetryPolicy(attempts=..., http_max_retry=...)).")


# ----------------------------------------------------------------------------- the reader


class AlignedReader(AutoParallelRioReader):
    """stackstac ``Reader`` with a direct path for assets already on the output pixel lattice.

    Opens and reads are retried per :class:`RetryPolicy` (taken from the ``gdal_env`` when it
    is a :class:`ReadEnv`); failures end in :class:`~glacierxr.errors.AssetReadError`.
    """

    def __init__(self, **kwargs) -> None:
        spec = kwargs.get("spec")
        if isinstance(spec, RasterSpec) and not isinstance(spec, _ExactWarpSpec):
            kwargs["spec"] = _ExactWarpSpec(epsg=spec.epsg, bounds=spec.bounds, resolutions_xy=spec.resolutions_xy)
        super().__init__(**kwargs)
        self._align_lock = threading.Lock()
        self._aligned: tuple | None | bool = False  # False: not checked yet
        # the direct path's open datasets, one per thread, kept across chunks like stackstac's own
        # (the open is not repeated, and GDAL's block cache serves tiles that straddle two chunks)
        self._local = threading.local()
        self._generation = 0
        self.retry: RetryPolicy = getattr(self.gdal_env, "retry", None) or RetryPolicy()
        self.label: str = getattr(self.gdal_env, "labels", {}).get(self.url, "")

    # -- retrying

    def _uncached(self) -> dict[str, str]:
        """GDAL options that make a retry ask the server again for this file.

        ``CPL_VSIL_CURL_NON_CACHED`` names file prefixes whose cached state (size, existence,
        data) GDAL must drop when a handle closes, and GDAL splits its value at colons, so a URL
        (``https://host:port/...``) cannot be named whole. The value therefore lists the
        network file systems; it only affects handles opened while it is set, i.e. the
        retry of this file in this thread. Plain local files get no option.
        """
        return {"CPL_VSIL_CURL_NON_CACHED": _REMOTE_PREFIXES} if _is_remote(self.url) else {}

    def _retrying(self, attempt_once: Callable[[], T]) -> T:
        """Run ``attempt_once()`` until it succeeds, retrying transient I/O errors.

        Retries run with GDAL's network cache bypassed (:meth:`_uncached`), so that GDAL asks
        the server again instead of replaying the failure it remembers.
        """
        policy = self.retry
        for attempt in range(1, policy.attempts + 1):
            try:
                if attempt == 1:
                    return attempt_once()
                with rasterio.Env(**self._uncached()):
                    return attempt_once()
            except AssetReadError:
                raise
            except Exception as exc:
                transient = is_transient(exc, self.url)
                if transient is None:
                    raise
                if not transient or attempt == policy.attempts:
                    raise self._error(exc, attempt, transient) from exc
                self.close()  # drop every thread's dataset: the next attempt reopens
                wait = policy.wait(attempt)
                logger.warning("Reading %s failed (attempt %d of %d, retrying in %.2f s): %s",
                               self.url, attempt, policy.attempts, wait, exc)
                time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, exc: BaseException, attempts: int, transient: bool) -> AssetReadError:
        cause = next((e for e in _chain(exc) if isinstance(e, (RasterioIOError, CPLE_BaseError))), exc)
        what = f"{self.label} ({self.url})" if self.label else self.url
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        why = "" if transient else " (not retried: the error is permanent)"
        err = AssetReadError(
            f"Could not read {what} after {tries}{why}: {type(cause).__name__}: {cause}. "
            f"{_advice(transient, str(cause))}"
        )
        err.href, err.attempts, err.transient, err.label = self.url, attempts, transient, self.label
        return err

    # -- reading

    def _check(self):
        with self._align_lock:
            if self._aligned is False:
                with self.gdal_env.open, rasterio.open(self.url) as src:
                    dst = self.spec.transform
                    info = alignment(src.transform, src.crs.to_epsg() if src.crs else None, dst,
                                     self.spec.epsg, self.resampling)
                    self._aligned = None if info is None or src.count != 1 else (
                        *info, src.height, src.width, _plain_mask(src))
            return self._aligned

    def read(self, window: Window, **kwargs) -> np.ndarray:
        """Read ``window`` of the output grid, retrying transient failures (see :class:`RetryPolicy`).

        Raises
        ------
        AssetReadError
            When the asset cannot be read: a permanent failure, or transient ones on every attempt.
        """
        return self._retrying(lambda: self._read_once(window, **kwargs))

    def _read_once(self, window: Window, **kwargs) -> np.ndarray:
        info = self._check()
        if info is None:
            return super().read(window, **kwargs)
        k, row_off, col_off, src_h, src_w, nodata = info
        h, w = int(window.height), int(window.width)
        # the window's origin relative to the source's corner (destination pixels), and what it covers
        wr, wc = int(window.row_off) - row_off, int(window.col_off) - col_off
        y0, y1 = max(0, -wr), min(h, src_h * k - wr)
        x0, x1 = max(0, -wc), min(w, src_w * k - wc)
        out = np.full((h, w), self.fill_value, dtype=self.dtype)
        if y1 <= y0 or x1 <= x0:
            return out
        r0, r1 = (wr + y0) // k, (wr + y1 - 1) // k + 1
        c0, c1 = (wc + x0) // k, (wc + x1 - 1) // k + 1
        src = self._direct_dataset()
        with self.gdal_env.read:
            src_window = Window(c0, r0, c1 - c0, r1 - r0)
            if nodata is False:  # a mask GDAL must read or compute (alpha band, internal mask)
                block = np.ma.filled(src.read(1, window=src_window, masked=True, out_dtype=self.dtype),
                                     fill_value=self.fill_value)
            else:
                block = src.read(1, window=src_window, out_dtype=self.dtype)
                if nodata is not None:
                    block[block == nodata] = self.fill_value
        scale, offset = self.scale_offset
        if scale != 1:
            block *= scale
        if offset != 0:
            block += offset
        if k == 1:
            out[y0:y1, x0:x1] = block
            return out
        # coarser pixels on the lattice: each fills k x k output pixels (GDAL's nearest on aligned
        # grids), written as k * k strided copies of the block instead of a repeated temporary
        sy, sx = wr + y0 - r0 * k, wc + x0 - c0 * k  # where the first output pixel falls in its source pixel
        for dy in range(min(k, y1 - y0)):
            rows = out[y0 + dy : y1 : k]
            i = (sy + dy) // k
            for dx in range(min(k, x1 - x0)):
                dst = rows[:, x0 + dx : x1 : k]
                j = (sx + dx) // k
                dst[...] = block[i : i + dst.shape[0], j : j + dst.shape[1]]
        return out

    def _direct_dataset(self):
        """This thread's open dataset for the direct path (reopened after :meth:`close`)."""
        local = self._local
        if getattr(local, "generation", None) != self._generation:
            if getattr(local, "dataset", None) is not None:
                local.dataset.close()  # only the thread that opened a dataset closes it
            with self.gdal_env.open:
                local.dataset = rasterio.open(self.url)
            local.generation = self._generation
        return local.dataset

    def close(self) -> None:
        """Close stackstac's datasets and make every thread reopen its direct-path dataset."""
        super().close()
        self._generation += 1

    def __setstate__(self, state) -> None:
        self.__init__(**state)

