"""Regional production: tiles, every output, refusal/overwrite/resume, kill -9, a killed worker, tilings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import glacierxr as gx
from glacierxr.errors import InvalidArgumentError, StoreExistsError
from glacierxr.pipeline import open_mosaic
from glacierxr.stac_server import serve
from glacierxr.synthetic import make_region

EXE = str(Path(sys.executable).with_name("glacierxr"))
OUTPUTS = ("tiles", "plan", "outlines.parquet", "outlines.gpkg", "inventory.csv", "quicklook.png", "manifest.json")
#: Small production tiles so that a few-km test region has several tiles and borders to merge.
TILES = dict(tile_km=2.5, margin_km=0.5)


def _tiles_done(out: Path) -> int:
    return len(list((out / "tiles").glob("*/done.json")))


def test_run_writes_every_output_and_a_manifest(region, stac_url, tmp_path):
    out = tmp_path / "run"
    manifest = gx.run_inventory(stac_url, bbox=region.bbox, datetime=region.datetime, out=out, chunk=128,
                                window=128, overlap=32, min_area_km2=0.01, quiet=True, **TILES)
    for name in OUTPUTS:
        assert (out / name).exists(), name
    assert not (out / ".partial").exists()
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["items"]["sentinel-2"] == sorted(region.collections["sentinel-2-l2a"])
    assert saved["parameters"]["model"] == "band-ratio" and len(saved["parameters"]["model_checksum"]) == 32
    assert {"glacierxr", "dask", "stackstac", "zarr"} <= set(saved["versions"])
    assert saved["plan"]["tiles"] == len(saved["tiles"]) >= 4 and saved["plan"]["epsg"] == [32645]
    assert all(t["status"] == "done" and set(t["timings_s"]) >= {"predict_s", "outlines_s", "inventory_s"}
               for t in saved["tiles"].values())
    assert saved["km2_processed"] > 10 and saved["glaciers"] == manifest["glaciers"] >= 1
    assert set(saved["timings_s"]) >= {"plan_s", "tiles_s", "merge_s", "outputs_s"}
    inv = pd.read_csv(out / "inventory.csv")
    assert len(inv) == saved["glaciers"] and "zmed_m" in inv and inv["area_km2"].min() >= 0.01
    outlines = gpd.read_parquet(out / "outlines.parquet")
    assert outlines.crs.to_epsg() == 4326 and len(outlines) == len(inv)
    # src_date is the newest scene's date, not the end of the search window
    assert region.datetime.endswith("2023-09-02") and {d[:10] for d in inv["src_date"]} == {f"{max(region.dates):%Y-%m-%d}"}
    masses = gpd.read_parquet(out / "complexes.parquet")
    assert set(masses["complex_id"]) == set(outlines["complex_id"]) and masses["n_glaciers"].sum() == len(outlines)
    # the tile stores mosaic back into one raster per zone, with the CRS
    mosaic = open_mosaic(out)
    assert list(mosaic) == [32645]
    prob = mosaic[32645]
    assert prob.rio.crs.to_epsg() == 32645 and float(prob.max()) > 0.5
    catalog = [json.loads(line) for line in (out / "tiles" / "items.ndjson").read_text().splitlines()]
    assert sorted(i["id"] for i in catalog) == sorted(saved["tiles"])

    with pytest.raises(StoreExistsError, match="resume=True"):
        gx.run_inventory(stac_url, bbox=region.bbox, datetime=region.datetime, out=out, quiet=True)
    with pytest.raises(InvalidArgumentError, match="other parameters.*window"):
        gx.run_inventory(stac_url, bbox=region.bbox, datetime=region.datetime, out=out, chunk=128, window=256,
                         overlap=32, min_area_km2=0.01, resume=True, quiet=True, **TILES)
    again = gx.run_inventory(stac_url, bbox=region.bbox, datetime=region.datetime, out=out, chunk=128, window=128,
                             overlap=32, min_area_km2=0.01, resume=True, quiet=True, **TILES)
    assert again["glaciers"] == manifest["glaciers"]
    gx.run_inventory(stac_url, bbox=region.bbox, datetime=region.datetime, out=out, overwrite=True, quiet=True,
                     chunk=256, window=128, overlap=32)


def test_glaciers_do_not_depend_on_the_tiling(region, stac_url, tmp_path):
    """Small tiles (glaciers cut by tile borders, merged) and one tile give the same glaciers."""
    common = dict(bbox=region.bbox, datetime=region.datetime, chunk=128, window=128, overlap=32, min_area_km2=0.01,
                  quiet=True, quicklook=False)
    small = gx.run_inventory(stac_url, out=tmp_path / "small", tile_km=1, margin_km=0.3, **common)
    one = gx.run_inventory(stac_url, out=tmp_path / "one", tile_km=100, **common)
    assert small["plan"]["tiles"] >= 9 and one["plan"]["tiles"] == 1
    assert small["merged_glaciers"] >= 1 and one["merged_glaciers"] == 0
    a, b = gpd.read_parquet(tmp_path / "small" / "outlines.parquet"), gpd.read_parquet(tmp_path / "one" / "outlines.parquet")
    assert len(a) == len(b) >= 1
    assert all(x.equals_exact(y, 0) for x, y in zip(a.geometry, b.geometry, strict=True))
    np.testing.assert_array_equal(a["area_km2"], b["area_km2"])
    np.testing.assert_allclose(a["zmed_m"], b["zmed_m"], atol=0.5)  # DEM warped per chunk window: ~0.1 m
    # no seam: glaciers share edges only along the ice divides of their own complex, and two ice
    # complexes never do (a mass cut in two at a tile border would)
    tree = __import__("shapely").STRtree(a.geometry.values)
    left, right = tree.query(a.geometry.values, predicate="intersects")
    ids = a["complex_id"].to_numpy()
    shared = [(i, j) for i, j in zip(left, right, strict=True) if i < j and a.geometry[i].intersection(a.geometry[j]).length]
    assert all(ids[i] == ids[j] for i, j in shared)
    masses = gpd.read_parquet(tmp_path / "small" / "complexes.parquet")
    assert len(a) > len(masses) and (masses["n_glaciers"] >= 2).any()  # split at divides, also the merged ones
    assert masses.equals(gpd.read_parquet(tmp_path / "one" / "complexes.parquet"))
    tree = __import__("shapely").STRtree(masses.geometry.values)
    left, right = tree.query(masses.geometry.values, predicate="intersects")
    assert all(masses.geometry[i].intersection(masses.geometry[j]).length == 0 for i, j in zip(left, right, strict=True) if i < j)


# ----------------------------------------------------------------------------- killed runs


@pytest.fixture(scope="module")
def slow_setup(tmp_path_factory):
    """A 768 px region and a model slow enough to be killed part way (D4 TTA, 8 passes)."""
    root = tmp_path_factory.mktemp("kill")
    reg = make_region(root / "region", seed=0, shape=(768, 768))
    torch.manual_seed(0)
    model = gx.models.create("attention-deeplabv3plus", bands=["B03", "B04", "B08", "B11"], preset="small")
    checkpoint = root / "model.pt"
    gx.models.save(model, checkpoint)
    with serve(reg.stac_dir) as url:
        args = ["--stac", url, "--bbox", *map(str, reg.bbox), "--datetime", reg.datetime, "--model", str(checkpoint),
                "--chunk", "96", "--window", "128", "--overlap", "32", "--min-area", "0.01", "--quiet",
                "--tile-km", "2.5", "--margin-km", "0.5", "--no-quicklook"]
        reference = root / "reference"
        # the uninterrupted run uses the same cluster shape (1 torch thread per worker): bit-identical floats
        subprocess.run([EXE, "inventory", *args, "--out", str(reference), "--workers", "2"], check=True, timeout=300)
        yield url, args, reference


def _same_outputs(a: Path, b: Path) -> None:
    stores = sorted(p.relative_to(a) for p in (a / "tiles").glob("*/probability.zarr"))
    assert stores and stores == sorted(p.relative_to(b) for p in (b / "tiles").glob("*/probability.zarr"))
    for store in stores:
        pa = xr.open_zarr(a / store)["glacier_probability"].values
        pb = xr.open_zarr(b / store)["glacier_probability"].values
        np.testing.assert_array_equal(pa, pb)
    ga, gb = gpd.read_parquet(a / "outlines.parquet"), gpd.read_parquet(b / "outlines.parquet")
    assert len(ga) == len(gb) and all(x.equals_exact(y, 0) for x, y in zip(ga.geometry, gb.geometry, strict=True))
    assert (a / "inventory.csv").read_bytes() == (b / "inventory.csv").read_bytes()


def test_kill_9_then_resume_gives_identical_outputs(slow_setup, tmp_path):
    _, args, reference = slow_setup
    out = tmp_path / "killed"
    proc = subprocess.Popen([EXE, "inventory", *args, "--out", str(out), "--workers", "2"], start_new_session=True)
    deadline = time.monotonic() + 240
    while _tiles_done(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its LocalCluster workers, at once
    proc.wait()
    total = json.loads((reference / "manifest.json").read_text())["plan"]["tiles"]
    assert 2 <= _tiles_done(out) < total, (_tiles_done(out), total)
    assert not (out / "manifest.json").exists()
    refused = subprocess.run([EXE, "inventory", *args, "--out", str(out)], capture_output=True, text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    subprocess.run([EXE, "inventory", *args, "--out", str(out), "--workers", "2", "--resume"], check=True, timeout=300)
    _same_outputs(reference, out)


def test_a_killed_worker_loses_and_duplicates_nothing(slow_setup, tmp_path):
    from distributed import LocalCluster

    url, args, reference = slow_setup
    def option(name: str) -> str:
        return args[args.index(name) + 1]

    bbox = [float(v) for v in args[args.index("--bbox") + 1 : args.index("--bbox") + 5]]
    out = tmp_path / "worker"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        errors = []

        def run() -> None:
            try:
                gx.run_inventory(url, bbox=bbox, datetime=option("--datetime"), out=out, model=option("--model"),
                                 scheduler=cluster.scheduler_address, chunk=96, window=128, overlap=32,
                                 min_area_km2=0.01, quiet=True, quicklook=False, **TILES)
            except Exception as exc:  # surfaced below
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        while _tiles_done(out) < 1 and thread.is_alive():
            time.sleep(0.02)
        assert not (out / "manifest.json").exists()  # the kill lands part way through
        victim = next(iter(cluster.workers.values()))
        os.kill(victim.process.pid, signal.SIGKILL)  # the nanny restarts it; its tasks are rescheduled
        thread.join(timeout=300)
        assert not errors, errors
    _same_outputs(reference, out)
