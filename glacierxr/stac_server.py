"""A local STAC API over a folder of collections and items (``rustac serve`` on 127.0.0.1).

The server is a real STAC API process, so code under test talks HTTP to it exactly as it would
to Earth Search or Planetary Computer. It listens on a free loopback port chosen at start-up
and is stopped when the context manager exits.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from glacierxr.errors import ServerError

__all__ = ["serve", "stac_files"]


def stac_files(folder: str | Path) -> list[Path]:
    """The collection and item files under ``folder``: collections first, then items.

    Collections are JSON files with ``"type": "Collection"``; items are ``*.ndjson`` files
    (one item per line) and JSON files holding a Feature or FeatureCollection.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"STAC folder {root} does not exist; write one with `glacierxr synth DIR`.")
    collections, items = [], []
    for path in sorted(root.rglob("*")):
        if path.suffix == ".ndjson":
            items.append(path)
        elif path.suffix == ".json":
            with path.open() as f:
                kind = json.load(f).get("type")
            if kind == "Collection":
                collections.append(path)
            elif kind in ("Feature", "FeatureCollection"):
                items.append(path)
    if not collections:
        raise ServerError(f"No STAC collection (a JSON file with type 'Collection') found under {root}.")
    return collections + items


def _rustac() -> str:
    exe = Path(sys.executable).with_name("rustac")
    found = str(exe) if exe.exists() else shutil.which("rustac")
    if not found:
        raise ServerError("The `rustac` command was not found; install it with `pip install rustac`.")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str, timeout: float = 1.0) -> bool:
    """Whether the STAC API at ``url`` answers ``/collections`` with 200."""
    try:
        with urllib.request.urlopen(url + "/collections", timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextlib.contextmanager
def serve(folder: str | Path, *, timeout: float = 20.0, attempts: int = 3) -> Iterator[str]:
    """Serve a folder of STAC collections + items as a STAC API on a free 127.0.0.1 port.

    Parameters
    ----------
    folder
        Folder searched recursively for collections (``*.json`` of type Collection) and items
        (``*.ndjson``, or ``*.json`` Features/FeatureCollections), e.g. ``Region.stac_dir``.
    timeout
        Seconds to wait for the server to answer before giving up.
    attempts
        Start-up attempts (a port can be taken between choosing it and binding it).

    Yields
    ------
    str
        The API's root URL, e.g. ``http://127.0.0.1:54321``.

    Examples
    --------
    >>> with serve(region.stac_dir) as url:            # doctest: +SKIP
    ...     items = gx.search(url, bbox=region.bbox, datetime=region.datetime)
    """
    files = [str(p) for p in stac_files(folder)]
    exe = _rustac()
    last_error = ""
    for _ in range(attempts):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [exe, "serve", "--addr", f"127.0.0.1:{port}", *files],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and proc.poll() is None and not _answers(url):
                time.sleep(0.05)
            if proc.poll() is None and _answers(url):
                yield url
                return
            last_error = proc.stderr.read() if proc.poll() is not None and proc.stderr else "no answer"
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stderr:
                proc.stderr.close()
    raise ServerError(f"`rustac serve` did not start on 127.0.0.1 after {attempts} attempts: {last_error.strip()}")
