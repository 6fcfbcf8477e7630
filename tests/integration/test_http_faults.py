"""COGs over HTTP: the range server, then search -> open_cube -> compute against clean and faulty servers."""

from __future__ import annotations

import http.client
import json
import logging
import pickle

import dask
import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.errors import RasterioIOError

import glacierxr as gx
from glacierxr.cube import gdal_env
from glacierxr.errors import AssetReadError, InvalidArgumentError
from glacierxr.reader import ReadEnv, RetryPolicy, is_transient
from glacierxr.stac_server import serve
from glacierxr.synthetic import make_region
from glacierxr.testing.http import Faults, rewrite_asset_hrefs, serve_files, serve_region

#: Small waits so that retries cost milliseconds; GDAL's per-request timeout stays well above
#: the slow answers injected below.
FAST = dict(backoff=0.02, max_backoff=0.1, http_retry_delay=0.02, http_timeout=3, http_connect_timeout=2)


@pytest.fixture(scope="module")
def small_region(tmp_path_factory):
    return make_region(tmp_path_factory.mktemp("http_region"), seed=3, shape=(256, 256))


@pytest.fixture(scope="module")
def local_cube(small_region):
    with serve(small_region.stac_dir) as url:
        items = gx.search(url, bbox=small_region.bbox, datetime=small_region.datetime)
    return gx.open_cube(items, bbox=small_region.bbox, chunks=128).compute()


def _http_cube(served, region, retry):
    items = gx.search(served.stac_url, bbox=region.bbox, datetime=region.datetime)
    for group in items.values():
        for it in group:
            assert all(a.href.startswith(served.files.url) for a in it.assets.values())
    return gx.open_cube(items, bbox=region.bbox, chunks=128, retry=retry)


def _one_cog(region):
    return sorted((region.root / "cogs").rglob("B04.tif"))[0]


# ----------------------------------------------------------------------------- the range server


def _request(url: str, method: str = "GET", headers: dict | None = None):
    host, port = url.split("//")[1].split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(method, "/" + url.split("/", 3)[3], headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_range_server_answers_head_ranges_and_whole_files(small_region):
    path = _one_cog(small_region)
    data = path.read_bytes()
    with serve_files(small_region.root) as files:
        url = files.url_for(path)
        status, headers, body = _request(url, "HEAD")
        assert (status, body) == (200, b"")
        assert int(headers["Content-Length"]) == len(data) and headers["Accept-Ranges"] == "bytes"

        status, headers, body = _request(url, headers={"Range": "bytes=10-1033"})
        assert status == 206 and body == data[10:1034]
        assert headers["Content-Range"] == f"bytes 10-1033/{len(data)}" and int(headers["Content-Length"]) == 1024

        assert _request(url, headers={"Range": "bytes=100-"})[2] == data[100:]
        assert _request(url, headers={"Range": "bytes=-16"})[2] == data[-16:]
        assert _request(url, headers={"Range": f"bytes={len(data) - 4}-{len(data) + 100}"})[2] == data[-4:]
        status, headers, _ = _request(url, headers={"Range": f"bytes={len(data)}-"})
        assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"

        status, headers, body = _request(url)
        assert status == 200 and body == data and "Content-Range" not in headers
        assert _request(files.url + "/cogs/nope.tif")[0] == 404
        assert _request(files.url + "/../../etc/passwd")[0] == 404

        with rasterio.open(url) as src, rasterio.open(path) as ref:  # GDAL's /vsicurl/ reads it
            np.testing.assert_array_equal(src.read(1), ref.read(1))
        stats = files.stats
        assert stats.heads >= 2 and stats.range_gets >= 5 and stats.not_found >= 2
        assert stats.errors == stats.resets == stats.faulted == 0


def test_faults_are_seeded_transient_and_counted(small_region):
    path = _one_cog(small_region)
    faults = Faults(error_rate=0.3, reset_rate=0.2, slow_rate=0.1, delay=0.0, seed=7, max_faults=2)
    outcomes = []
    for _ in range(2):  # the same requests meet the same faults
        with serve_files(small_region.root, faults=faults) as files:
            url = files.url_for(path)
            seen = []
            for i in range(60):
                for _try in range(3):  # at most 2 faults per request: the third try is served
                    try:
                        status = _request(url, headers={"Range": f"bytes={i}-{i + 9}"})[0]
                    except (ConnectionError, http.client.RemoteDisconnected):
                        status = "reset"
                    seen.append(status)
                    if status == 206:
                        break
                assert status == 206
            assert _request(url, "HEAD")[0] == 200  # HEAD is not faulted with ranges_only
            stats = files.stats
        outcomes.append(seen)
        assert stats.errors == seen.count(500) > 0 and stats.resets == seen.count("reset") > 0 and stats.slow > 0
        assert stats.faulted == stats.recovered > 0
        assert 0.2 < (stats.errors + stats.resets) / stats.range_gets < 0.6
    assert outcomes[0] == outcomes[1]


def test_unreachable_files_always_fail(small_region):
    path = _one_cog(small_region)
    for status in (404, 500):
        with serve_files(small_region.root, faults=Faults(unreachable={path.name}, unreachable_status=status)) as files:
            url = files.url_for(path)
            assert [_request(url, m)[0] for m in ("HEAD", "GET", "GET")] == [status] * 3
            assert files.stats.unreachable == 3


def test_faults_validate_their_arguments():
    with pytest.raises(InvalidArgumentError, match="error_rate"):
        Faults(error_rate=1.5)
    with pytest.raises(InvalidArgumentError, match="add up"):
        Faults(error_rate=0.6, reset_rate=0.6)
    with pytest.raises(InvalidArgumentError, match="unreachable_status"):
        Faults(unreachable_status=200)


def test_rewritten_catalogue_points_every_asset_at_the_server(small_region, tmp_path):
    out = rewrite_asset_hrefs(small_region.stac_dir, tmp_path / "stac", root=small_region.root, base_url="http://h:1/")
    hrefs = [a["href"] for f in out.rglob("*.ndjson") for line in f.read_text().splitlines()
             for a in json.loads(line)["assets"].values()]
    assert hrefs and all(h.startswith("http://h:1/cogs/") for h in hrefs)
    assert all((small_region.root / h.removeprefix("http://h:1/")).is_file() for h in hrefs)
    with pytest.raises(InvalidArgumentError, match="outside"):
        rewrite_asset_hrefs(small_region.stac_dir, tmp_path / "stac2", root=tmp_path, base_url="http://h:1")


# ----------------------------------------------------------------------------- retry policy plumbing


def test_gdal_env_carries_http_retries_and_the_policy():
    policy = RetryPolicy(attempts=2, http_max_retry=5, http_timeout=7, **{k: v for k, v in FAST.items() if k != "http_timeout"})
    env = gdal_env(policy)
    opts = env.__getstate__()[0]
    assert opts["GDAL_HTTP_MAX_RETRY"] == "5" and opts["GDAL_HTTP_TIMEOUT"] == "7"
    assert opts["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR" and ".tif" in opts["CPL_VSIL_CURL_ALLOWED_EXTENSIONS"]
    if tuple(int(p) for p in rasterio.__gdal_version__.split(".")[:2]) >= (3, 10):
        assert "500" in opts["GDAL_HTTP_RETRY_CODES"]
    labelled = env.with_labels({"http://x/a.tif": "band 'B04' of item 'i'"})
    again = pickle.loads(pickle.dumps(labelled.updated(always={"X": "1"})))
    assert isinstance(again, ReadEnv) and again.retry == policy and again.labels == labelled.labels
    with pytest.raises(InvalidArgumentError):
        RetryPolicy(attempts=0)


def test_transient_and_permanent_errors_are_told_apart():
    url = "https://example.com/a.tif"
    assert is_transient(RasterioIOError("HTTP response code: 500"), url) is True
    assert is_transient(RasterioIOError("HTTP response code: 429"), url) is True
    assert is_transient(RasterioIOError("Connection reset by peer"), url) is True
    assert is_transient(RasterioIOError("HTTP response code: 404"), url) is False
    assert is_transient(RasterioIOError("HTTP response code: 403"), url) is False
    assert is_transient(RasterioIOError("/x.tif: No such file or directory"), "/x.tif") is False
    wrapped = RuntimeError("Error opening 'u'")
    wrapped.__cause__ = RasterioIOError("HTTP response code: 503")
    assert is_transient(wrapped, url) is True
    assert is_transient(ValueError("a bug"), url) is None
    assert is_transient(RasterioIOError("not recognized as being in a supported file format"), url) is True
    assert is_transient(RasterioIOError("not recognized as being in a supported file format"), "vrt:///x.tif?bands=2") is False
    assert is_transient(RasterioIOError("HTTP response code: 502"), f"vrt:///vsicurl/{url}?bands=2") is True


# ----------------------------------------------------------------------------- the cube over HTTP


def test_cube_over_clean_http_equals_the_local_cube(small_region, local_cube, tmp_path):
    with serve_region(small_region, tmp_path / "stac") as served:
        cube = _http_cube(served, small_region, RetryPolicy(**FAST)).compute()
        stats = served.files.stats
    xr.testing.assert_identical(cube, local_cube)
    assert stats.range_gets > 0 and stats.bytes_sent > 0 and stats.errors == stats.resets == 0


def test_transient_faults_are_retried_and_the_cube_is_identical(small_region, local_cube, tmp_path):
    """25% of range requests fail (15% HTTP 500, 10% reset), 10% are slow: GDAL retries them."""
    faults = Faults(error_rate=0.15, reset_rate=0.10, slow_rate=0.10, delay=0.1, seed=3)
    with serve_region(small_region, tmp_path / "stac", faults=faults) as served:
        cube = _http_cube(served, small_region, RetryPolicy(attempts=3, http_max_retry=3, **FAST)).compute()
        stats = served.files.stats
    xr.testing.assert_identical(cube, local_cube)
    assert stats.errors > 0 and stats.resets > 0 and stats.slow > 0
    assert stats.recovered > 0 and stats.recovered >= stats.faulted - 2  # failed requests were asked again, then served


def test_our_retries_recover_when_gdal_does_not_retry(small_region, local_cube, tmp_path, caplog):
    """With GDAL's own retries off, AlignedReader's attempts (with GDAL's cache bypassed) recover.

    Failed range reads are recovered inside GDAL even then (its block reads fall back), so the
    faults hit every request, HEAD included: a failed HEAD fails the whole open. Each request
    fails at most once (``max_faults=1``), so every failed attempt uses up a fault and a few
    attempts always get through: the test cannot flake on bad luck.
    """
    faults = Faults(error_rate=0.3, seed=1, max_faults=1, ranges_only=False)
    with caplog.at_level(logging.WARNING, logger="glacierxr.reader"):
        with serve_region(small_region, tmp_path / "stac", faults=faults) as served:
            cube = _http_cube(served, small_region, RetryPolicy(attempts=8, http_max_retry=0, **FAST)).compute()
            stats = served.files.stats
    xr.testing.assert_identical(cube, local_cube)
    retries = [r for r in caplog.records if r.name == "glacierxr.reader" and "retrying" in r.getMessage()]
    # a retry may ask a slightly different byte range, so not every failed request is asked again
    assert retries and stats.errors > 0 and stats.recovered > 0


@pytest.mark.parametrize("status, attempts", [(500, 3), (404, 1)])
def test_an_unreachable_asset_raises_naming_it(small_region, tmp_path, status, attempts):
    """Always-500 is retried (each retry a real request), 404 is not; neither becomes NaN pixels."""
    target = sorted((small_region.root / "cogs").rglob("B04.tif"))[-1]
    faults = Faults(unreachable={str(target.relative_to(small_region.root))}, unreachable_status=status)
    policy = RetryPolicy(attempts=3, http_max_retry=0, **FAST)
    with serve_region(small_region, tmp_path / "stac", faults=faults) as served:
        href = served.files.url_for(target)
        cube = _http_cube(served, small_region, policy)
        with dask.config.set(scheduler="synchronous"), pytest.raises(AssetReadError) as info:
            cube.compute()
        asked = served.files.stats.unreachable
    err = info.value
    assert err.href == href and err.attempts == attempts and err.transient == (status == 500)
    message = str(err)
    assert href in message and "band 'B04' of item " in message and f"after {attempts} attempt" in message
    assert f"HTTP response code: {status}" in message
    assert ("kept failing" in message) if status == 500 else ("not retried" in message and "stale" in message)
    # without bypassing GDAL's cache, attempts 2 and 3 would replay the first failure unasked
    assert asked >= attempts
    assert isinstance(err, gx.GlacierxrError) and isinstance(err, OSError)
