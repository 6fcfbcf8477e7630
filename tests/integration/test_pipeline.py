"""Regional production: every output, refusal/overwrite/resume, kill -9 and a killed worker."""

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
from glacierxr.stac_server import serve
from glacierxr.store import store_status
from glacierxr.synthetic import make_region

EXE = str(Path(sys.executable).with_name("glacierxr"))
OUTPUTS = ("probability.zarr", "outlines.parquet", "outlines.gpkg", "inventory.csv", "quicklook.png", "manifest.json")


def test_run_writes_every_output_and_a_manifest(region, stac_url, tmp_path):
    out = tmp_path / "run"
    manifest = gx.run_inventory(stac_url, bbox=region.bbox, datetime=region.datetime, out=out, chunk=128,
                                tile=128, overlap=32, min_area_km2=0.01, quiet=True)
    for name in OUTPUTS:
        assert (out / name).exists(), name
    assert not (out / ".partial").exists()
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["items"]["sentinel-2"] == region.collections["sentinel-2-l2a"]
    assert saved["parameters"]["model"] == "band-ratio" and len(saved["parameters"]["model_checksum"]) == 32
    assert {"glacierxr", "dask", "stackstac", "zarr"} <= set(saved["versions"])
    assert saved["km2_processed"] > 10 and saved["glaciers"] == manifest["glaciers"] >= 1
    assert set(saved["timings_s"]) >= {"search_s", "predict_s", "outlines_s", "inventory_s"}
    inv = pd.read_csv(out / "inventory.csv")
    assert len(inv) == saved["glaciers"] and "zmed_m" in inv

    with pytest.raises(StoreExistsError, match="--resume"):
        gx.run_inventory(stac_url, bbox=region.bbox, datetime=region.datetime, out=out, quiet=True)
    with pytest.raises(InvalidArgumentError, match="other parameters.*tile"):
        gx.run_inventory(stac_url, bbox=region.bbox, datetime=region.datetime, out=out, chunk=128, tile=256,
                         overlap=32, min_area_km2=0.01, resume=True, quiet=True)
    again = gx.run_inventory(stac_url, bbox=region.bbox, datetime=region.datetime, out=out, chunk=128, tile=128,
                             overlap=32, min_area_km2=0.01, resume=True, quiet=True)
    assert again["glaciers"] == manifest["glaciers"]
    gx.run_inventory(stac_url, bbox=region.bbox, datetime=region.datetime, out=out, overwrite=True, quiet=True)


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
                "--chunk", "96", "--tile", "128", "--overlap", "32", "--min-area", "0.01", "--quiet"]
        reference = root / "reference"
        # the uninterrupted run uses the same cluster shape (1 torch thread per worker): bit-identical floats
        subprocess.run([EXE, "inventory", *args, "--out", str(reference), "--workers", "2"], check=True, timeout=300)
        yield url, args, reference


def _same_outputs(a: Path, b: Path) -> None:
    pa = xr.open_zarr(a / "probability.zarr")["glacier_probability"].values
    pb = xr.open_zarr(b / "probability.zarr")["glacier_probability"].values
    np.testing.assert_array_equal(pa, pb)
    ga, gb = gpd.read_parquet(a / "outlines.parquet"), gpd.read_parquet(b / "outlines.parquet")
    assert len(ga) == len(gb) and all(x.equals_exact(y, 0) for x, y in zip(ga.geometry, gb.geometry))
    pd.testing.assert_frame_equal(pd.read_csv(a / "inventory.csv"), pd.read_csv(b / "inventory.csv"))


def test_kill_9_then_resume_gives_identical_outputs(slow_setup, tmp_path):
    _, args, reference = slow_setup
    out = tmp_path / "killed"
    proc = subprocess.Popen([EXE, "inventory", *args, "--out", str(out), "--workers", "2"], start_new_session=True)
    store = out / "probability.zarr"
    deadline = time.monotonic() + 240
    while store_status(store)["chunks_done"] < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its LocalCluster workers, at once
    proc.wait()
    status = store_status(store)
    total = json.loads((reference / "manifest.json").read_text())["grid"]["chunks"]
    assert 3 <= status["chunks_done"] < total and not status["complete"], status
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
                                 scheduler=cluster.scheduler_address, chunk=96, tile=128, overlap=32,
                                 min_area_km2=0.01, quiet=True)
            except Exception as exc:  # surfaced below
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        store = out / "probability.zarr"
        while store_status(store)["chunks_done"] < 2 and thread.is_alive():
            time.sleep(0.02)
        assert not store_status(store)["complete"]  # the kill lands part way through
        victim = next(iter(cluster.workers.values()))
        os.kill(victim.process.pid, signal.SIGKILL)  # the nanny restarts it; its tasks are rescheduled
        thread.join(timeout=300)
        assert not errors, errors
    _same_outputs(reference, out)


def test_work_units_give_the_same_outputs(region, stac_url, tmp_path):
    common = dict(bbox=region.bbox, datetime=region.datetime, chunk=96, tile=128, overlap=32, min_area_km2=0.01, quiet=True)
    gx.run_inventory(stac_url, out=tmp_path / "one", unit_chunks=None, **common)
    gx.run_inventory(stac_url, out=tmp_path / "units", unit_chunks=2, **common)
    _same_outputs(tmp_path / "one", tmp_path / "units")
