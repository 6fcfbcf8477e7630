"""`glacierxr inventory` against a production STAC API (pgstac + stac-fastapi-pgstac) equals the rustac run.

The ``pgstac_url`` fixture (tests/integration/conftest.py) serves the session's synthetic region
from PostgreSQL + PostGIS; the ``stac_url`` fixture serves the same files with ``rustac serve``.
Both runs ask for ``--max-cloud``, which pgstac must apply on the server (CQL2 filter).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pystac_client
import pytest
import xarray as xr
from click.testing import CliRunner
from pystac_client.stac_api_io import StacApiIO

from glacierxr.cli import main

pytestmark = pytest.mark.pgstac

search_module = importlib.import_module("glacierxr.search")  # `glacierxr.search` is also the function
MAX_CLOUD = 15.0
S2 = "sentinel-2-l2a"
CLOUD = "eo:cloud_cover"


def _cloud_covers(region) -> dict[str, float]:
    lines = (region.stac_dir / S2 / "items.ndjson").read_text().splitlines()
    return {item["id"]: item["properties"][CLOUD] for item in map(json.loads, lines)}


def _inventory(url: str, region, out: Path) -> None:
    args = ["inventory", "--stac", url, "--bbox", *map(str, region.bbox), "--datetime", region.datetime,
            "--out", str(out), "--chunk", "128", "--window", "128", "--overlap", "32", "--min-area", "0.01",
            "--tile-km", "2.5", "--margin-km", "0.5",
            "--max-cloud", str(MAX_CLOUD), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, (result.output, result.exception)


@pytest.fixture(scope="module")
def runs(region, stac_url, pgstac_url, tmp_path_factory):
    """The same inventory against rustac and against pgstac; the STAC requests of the pgstac run."""
    root = tmp_path_factory.mktemp("pgstac-runs")
    _inventory(stac_url, region, root / "rustac")
    requests: list[dict] = []
    original = StacApiIO.request

    def logged(self, href, method=None, headers=None, parameters=None):
        text = original(self, href, method=method, headers=headers, parameters=parameters)
        requests.append({"href": href, "method": method or "GET", "parameters": parameters, "response": text})
        return text

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(StacApiIO, "request", logged)
        _inventory(pgstac_url, region, root / "pgstac")
    return root / "rustac", root / "pgstac", requests


def test_pgstac_advertises_cql2_filter(pgstac_url):
    client = pystac_client.Client.open(pgstac_url)
    assert client.conforms_to("FILTER") and client.conforms_to("QUERY")
    assert search_module._supports_query(client) == "filter"


def test_cloud_cover_is_filtered_on_the_server(region, pgstac_url, runs):
    covers = _cloud_covers(region)
    clear = {i for i, c in covers.items() if c <= MAX_CLOUD}
    assert clear and clear != set(covers), f"the region needs scenes on both sides of {MAX_CLOUD} %: {covers}"
    *_, requests = runs
    s2 = [r for r in requests if r["href"].startswith(pgstac_url + "/search")
          and list((r["parameters"] or {}).get("collections", ())) == [S2]]
    assert s2, [(r["method"], r["href"], r["parameters"]) for r in requests]
    for r in s2:
        assert r["method"] == "POST"
        assert r["parameters"]["filter"] == {"op": "<=", "args": [{"property": CLOUD}, MAX_CLOUD]}
        assert r["parameters"]["filter-lang"] == "cql2-json"
    returned = {f["id"] for r in s2 for f in json.loads(r["response"])["features"]}
    assert returned == clear  # the cloudy scene never left the server


def test_inventory_equals_the_rustac_run(region, runs):
    rustac, pgstac, _ = runs
    from glacierxr.pipeline import open_mosaic

    pa, pb = open_mosaic(rustac)[32645].load(), open_mosaic(pgstac)[32645].load()
    np.testing.assert_array_equal(pa.values, pb.values)
    xr.testing.assert_equal(pa, pb)  # dims, coordinates and values; attrs may name the API
    ga, gb = gpd.read_parquet(rustac / "outlines.parquet"), gpd.read_parquet(pgstac / "outlines.parquet")
    assert len(ga) == len(gb) >= 1
    assert ga.crs == gb.crs and all(a.equals_exact(b, 0) for a, b in zip(ga.geometry, gb.geometry, strict=True))
    pd.testing.assert_frame_equal(pd.DataFrame(ga.drop(columns="geometry")), pd.DataFrame(gb.drop(columns="geometry")))
    assert (rustac / "inventory.csv").read_bytes() == (pgstac / "inventory.csv").read_bytes()
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (rustac, pgstac))
    assert {k: sorted(v) for k, v in ma["items"].items()} == {k: sorted(v) for k, v in mb["items"].items()}
    assert sorted(ma["items"]["sentinel-2"]) == sorted(i for i, c in _cloud_covers(region).items() if c <= MAX_CLOUD)
