"""Serve files over HTTP with byte ranges, optionally injecting faults, on 127.0.0.1.

Cloud-optimised GeoTIFFs are read over HTTP with ``Range`` requests (GDAL's ``/vsicurl/``).
:func:`serve_files` stands in for the object store: a threaded stdlib server, in its own
process, that answers ``HEAD`` and ``GET`` (whole file, or ``Range: bytes=a-b`` with
``206 Partial Content``), with a correct ``Content-Length`` and ``Accept-Ranges: bytes``. Given :class:`Faults`, it fails a
fraction of the requests the way real stores do (HTTP 500, connections reset without an answer,
slow answers), deterministically from a seed, and can make some files permanently unreachable.
:attr:`HttpFileServer.stats` counts what was served and injected, so tests can prove the faults
happened and were retried.

:func:`serve_region` puts both halves together for a synthetic region: the COGs behind a file
server and a STAC API (:func:`glacierxr.stac_server.serve`) whose asset hrefs point at it, so
``search`` -> ``open_cube`` -> ``compute`` reads every pixel over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glacierxr.errors import InvalidArgumentError, ServerError

_CONTROL = "/__control__/"

__all__ = ["Faults", "FaultStats", "HttpFileServer", "HttpRegion", "serve_files", "rewrite_asset_hrefs", "serve_region"]


@dataclass(frozen=True)
class Faults:
    """Which requests a :class:`HttpFileServer` fails, and how.

    Each request that can fault draws one number in ``[0, 1)`` from a hash of ``seed``, the
    method, the path, the ``Range`` header and how many times that exact request was seen
    before, so the same sequence of requests meets the same faults whatever the thread
    interleaving. The draw picks, in this order, an HTTP 500 (``error_rate``), a connection
    reset (``reset_rate``) or a slow answer (``slow_rate``); the rest are served normally.

    Parameters
    ----------
    error_rate
        Fraction of requests answered ``500 Internal Server Error`` (no body).
    reset_rate
        Fraction of requests whose connection is reset (TCP RST) without any answer.
    slow_rate
        Fraction of requests answered correctly after sleeping ``delay`` seconds.
    delay
        Seconds a slow answer waits.
    seed
        Seed of the draws.
    max_faults
        A given request (same method, path and range) meets an error or reset at most this
        many times; later tries are served. This keeps the faults *transient*: a client that
        retries each request ``max_faults`` times always succeeds. ``0`` disables them.
    ranges_only
        Apply the random faults to ranged ``GET`` requests only (the default), or also to
        ``HEAD`` and whole-file ``GET`` requests.
    unreachable
        Files that always fail: paths relative to the served root (``"cogs/x.tif"``) or bare
        file names (``"x.tif"``).
    unreachable_status
        The HTTP status the unreachable files get (404 for a missing object, 500 for a
        broken one, 403 for a denied one).
    """

    error_rate: float = 0.0
    reset_rate: float = 0.0
    slow_rate: float = 0.0
    delay: float = 0.2
    seed: int = 0
    max_faults: int = 2
    ranges_only: bool = True
    unreachable: frozenset[str] = frozenset()
    unreachable_status: int = 404

    def __post_init__(self) -> None:
        rates = {"error_rate": self.error_rate, "reset_rate": self.reset_rate, "slow_rate": self.slow_rate}
        for name, value in rates.items():
            if not 0.0 <= value <= 1.0:
                raise InvalidArgumentError(f"Faults({name}={value!r}) must be a fraction between 0 and 1.")
        if sum(rates.values()) > 1.0 + 1e-12:
            raise InvalidArgumentError(
                f"Faults rates add up to {sum(rates.values()):.3g} > 1; lower error_rate, reset_rate or slow_rate."
            )
        if self.delay < 0 or self.max_faults < 0:
            raise InvalidArgumentError("Faults(delay=..., max_faults=...) must not be negative.")
        if not 400 <= self.unreachable_status <= 599:
            raise InvalidArgumentError(
                f"Faults(unreachable_status={self.unreachable_status}) must be an HTTP error status (400-599)."
            )
        object.__setattr__(self, "unreachable", frozenset(str(u).lstrip("/") for u in self.unreachable))

    def to_json(self) -> str:
        """The faults as the JSON object the server process reads."""
        d = dict(self.__dict__)
        d["unreachable"] = sorted(self.unreachable)
        return json.dumps(d)


@dataclass
class FaultStats:
    """Counters of one :class:`HttpFileServer` at one moment (from :attr:`HttpFileServer.stats`)."""

    requests: int = 0
    """Every request received."""
    heads: int = 0
    """``HEAD`` requests."""
    range_gets: int = 0
    """``GET`` requests with a ``Range`` header."""
    served: int = 0
    """Requests answered 200 or 206."""
    errors: int = 0
    """Random faults answered HTTP 500."""
    resets: int = 0
    """Random faults whose connection was reset without an answer."""
    slow: int = 0
    """Random faults answered after ``Faults.delay``."""
    unreachable: int = 0
    """Requests for an unreachable file (answered ``Faults.unreachable_status``)."""
    not_found: int = 0
    """Requests for a path that does not exist under the served root (404)."""
    faulted: int = 0
    """Distinct requests (method, path, range) that met at least one error or reset."""
    recovered: int = 0
    """Of those, how many were later served successfully: a retry happened and worked."""
    bytes_sent: int = 0
    """Body bytes sent."""
    paths: dict[str, int] = field(default_factory=dict)
    """Requests per path."""

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict."""
        return {**self.__dict__, "paths": dict(self.paths)}


class HttpFileServer:
    """A running file server (made by :func:`serve_files`).

    The server runs in its own Python process (:mod:`glacierxr.testing._range_server`): GDAL
    can hold the GIL while it waits for an HTTP answer, which would stall a server thread in
    the reading process.

    Attributes
    ----------
    root
        The folder served.
    url
        Base URL, e.g. ``http://127.0.0.1:54321``.
    """

    def __init__(self, root: Path, faults: Faults, *, timeout: float = 10.0) -> None:
        self.root = root
        self._faults = faults
        config = json.dumps({"root": str(root), "faults": json.loads(faults.to_json())})
        # -I: isolated mode, so the script's folder (holding this `http` module) does not shadow the stdlib's
        self._proc = subprocess.Popen([sys.executable, "-I", str(Path(__file__).with_name("_range_server.py")), config],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        line = self._proc.stdout.readline().strip() if ready else ""
        if not line.isdigit():
            self.stop()
            err = self._proc.stderr.read() if self._proc.stderr else ""
            raise ServerError(f"The HTTP file server did not start within {timeout} s: {err.strip() or 'no answer'}")
        self.url = f"http://127.0.0.1:{line}"

    def _control(self, method: str, path: str, body: bytes | None = None) -> bytes:
        req = urllib.request.Request(f"{self.url}{_CONTROL}{path}", data=body, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    @property
    def faults(self) -> Faults:
        """The faults in force; assign new :class:`Faults` to change them while serving."""
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self._control("PUT", "faults", value.to_json().encode())
        self._faults = value

    @property
    def stats(self) -> FaultStats:
        """The counters now (a copy)."""
        return FaultStats(**json.loads(self._control("GET", "stats")))

    def url_for(self, path: str | os.PathLike[str]) -> str:
        """The URL of a file under :attr:`root` (an absolute path or one relative to the root)."""
        p = Path(path)
        rel = p.resolve().relative_to(self.root) if p.is_absolute() else p
        return f"{self.url}/{urllib.parse.quote(rel.as_posix())}"

    def stop(self) -> None:
        """Stop the server process."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream:
                stream.close()


@contextlib.contextmanager
def serve_files(root: str | os.PathLike[str], *, faults: Faults | None = None) -> Iterator[HttpFileServer]:
    """Serve the files under ``root`` over HTTP (``HEAD``, ``GET``, byte ranges) on a free 127.0.0.1 port.

    Parameters
    ----------
    root
        Folder whose files are served; URL paths are paths relative to it.
    faults
        Faults to inject; none by default.

    Yields
    ------
    HttpFileServer
        The running server; its ``url`` is the base URL and ``stats`` its counters.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder.

    Examples
    --------
    >>> with serve_files(region.root, faults=Faults(error_rate=0.25, seed=1)) as files:   # doctest: +SKIP
    ...     rasterio.open(files.url_for("cogs/s2_B04_0.tif"))
    """
    folder = Path(root).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"Cannot serve {folder}: it is not a folder. Pass the folder holding the files.")
    server = HttpFileServer(folder, faults or Faults())
    try:
        yield server
    finally:
        server.stop()


# ----------------------------------------------------------------------------- STAC over HTTP


def _rewrite_item(item: dict, root: Path, base_url: str) -> dict:
    for asset in (item.get("assets") or {}).values():
        href = asset.get("href", "")
        if not href.startswith("file:"):
            continue
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(href).path)).resolve()
        if not path.is_relative_to(root):
            raise InvalidArgumentError(
                f"Asset href {href} is outside {root}, so the file server cannot serve it; pass the common "
                "parent folder of every asset as `root`."
            )
        asset["href"] = f"{base_url}/{urllib.parse.quote(path.relative_to(root).as_posix())}"
    return item


def rewrite_asset_hrefs(
    stac_dir: str | os.PathLike[str], dest: str | os.PathLike[str], *, root: str | os.PathLike[str], base_url: str
) -> Path:
    """Copy a folder of STAC JSON/ndjson, pointing ``file://`` asset hrefs under ``root`` at ``base_url``.

    ``file:///.../root/cogs/a.tif`` becomes ``{base_url}/cogs/a.tif``. Items are read from
    ``*.ndjson`` (one per line) and ``*.json`` (Feature, FeatureCollection; Collection assets
    too); other files are copied unchanged, and hrefs that are not ``file://`` are kept.

    Parameters
    ----------
    stac_dir
        The folder to copy, e.g. ``Region.stac_dir``.
    dest
        Where to write the copy (created; must not exist yet or be empty).
    root
        The folder the file server serves; every ``file://`` asset must be under it.
    base_url
        The file server's base URL, e.g. :attr:`HttpFileServer.url`.

    Returns
    -------
    pathlib.Path
        ``dest``, ready for :func:`glacierxr.stac_server.serve`.

    Raises
    ------
    InvalidArgumentError
        If an asset lies outside ``root``.
    """
    src, out, base = Path(stac_dir), Path(dest), Path(root).resolve()
    if not src.is_dir():
        raise FileNotFoundError(f"STAC folder {src} does not exist; write one with `glacierxr synth DIR`.")
    if out.exists() and any(out.iterdir()):
        raise InvalidArgumentError(f"{out} already holds files; give rewrite_asset_hrefs an empty or new folder.")
    base_url = base_url.rstrip("/")
    for path in sorted(src.rglob("*")):
        target = out / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".ndjson":
            lines = [json.dumps(_rewrite_item(json.loads(line), base, base_url))
                     for line in path.read_text().splitlines() if line.strip()]
            target.write_text("".join(line + "\n" for line in lines))
        elif path.suffix == ".json":
            doc = json.loads(path.read_text())
            for item in doc.get("features", []) if doc.get("type") == "FeatureCollection" else [doc]:
                _rewrite_item(item, base, base_url)
            target.write_text(json.dumps(doc, indent=1))
        else:
            shutil.copy2(path, target)
    return out


@dataclass(frozen=True)
class HttpRegion:
    """A region served over HTTP (made by :func:`serve_region`)."""

    stac_url: str
    """Root URL of the STAC API whose asset hrefs point at :attr:`files`."""
    files: HttpFileServer
    """The file server holding the COGs (its ``stats`` count the reads)."""
    stac_dir: Path
    """The rewritten STAC folder the API serves."""


@contextlib.contextmanager
def serve_region(region: Any, workdir: str | os.PathLike[str], *, faults: Faults | None = None) -> Iterator[HttpRegion]:
    """Serve a synthetic region's COGs over HTTP and its STAC items, pointing at them, as a STAC API.

    Parameters
    ----------
    region
        A :class:`glacierxr.synthetic.Region` (anything with ``root`` holding the COGs and
        ``stac_dir``).
    workdir
        An empty or new folder for the rewritten STAC copy (its hrefs name the server's port).
    faults
        Faults the file server injects; none by default.

    Yields
    ------
    HttpRegion
        ``stac_url`` for :func:`glacierxr.search`, and the file server with its counters.

    Examples
    --------
    >>> with serve_region(region, tmp_path / "http", faults=Faults(error_rate=0.25)) as served:  # doctest: +SKIP
    ...     items = gx.search(served.stac_url, bbox=region.bbox, datetime=region.datetime)
    ...     cube = gx.open_cube(items, bbox=region.bbox).compute()
    ...     served.files.stats.errors
    """
    from glacierxr.stac_server import serve

    with serve_files(region.root, faults=faults) as files:
        stac_dir = rewrite_asset_hrefs(region.stac_dir, workdir, root=region.root, base_url=files.url)
        with serve(stac_dir) as url:
            yield HttpRegion(stac_url=url, files=files, stac_dir=stac_dir)

