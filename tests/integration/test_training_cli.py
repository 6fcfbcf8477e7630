"""Training end to end: the chip cache, `glacierxr train` (with resume), `glacierxr evaluate`, and
`glacierxr experiment` writing the paper-style tables."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import glacierxr as gx
import glacierxr.models as gm
from glacierxr.cli import main
from glacierxr.errors import InvalidArgumentError
from glacierxr.training import IGNORE, ChipDataset, bands_of, chip_windows, rasterize_labels

CHIP = 64


def _args(region, url):
    return ["--stac", url, "--bbox", *map(str, region.bbox), "--datetime", region.datetime]


@pytest.fixture(scope="module")
def cube(region, stac_url):
    items = gx.search(stac_url, bbox=region.bbox, datetime=region.datetime, sensors=("sentinel-2", "dem"))
    return gx.open_cube(items, bbox=region.bbox, chunks=128).persist()


def test_training_raster_chips_equal_lazy_chips_cost_per_pixel_and_are_reused(region, cube, tmp_path):
    import time

    from glacierxr.training import GridChips, training_raster

    labels = rasterize_labels(gpd.read_file(region.truth_path), cube["B02"])
    windows, _ = chip_windows(labels.shape, CHIP, val_fraction=0.3, seed=0)
    model = gm.create("unet", bands=["B03", "B11", "elevation"], preset="tiny")
    lazy = ChipDataset(cube, labels, windows[:5], model.bands, model.normalization, chip=CHIP)
    raster = training_raster(cube, region.truth_path, model.bands, cache=tmp_path / "chips")
    assert (tmp_path / "chips" / "x.npy").exists() and raster.x.shape == (3, *labels.shape)
    chips = GridChips(raster, windows[:5], CHIP, CHIP, model.normalization)
    for i in range(5):
        (x0, y0), (x1, y1) = lazy[i], chips[i]
        # the same chips, except that pixels missing a band are labelled IGNORE (no loss, no metric)
        assert torch.allclose(x0, x1) and torch.equal(torch.where(y1 == IGNORE, y0, y1), y0)
    mtime = (tmp_path / "chips" / "x.npy").stat().st_mtime_ns
    again = training_raster(cube, region.truth_path, model.bands, cache=tmp_path / "chips")  # reused, not rebuilt
    assert (tmp_path / "chips" / "x.npy").stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again.x, raster.x)
    other = training_raster(cube, region.truth_path, ["B03", "B04"], cache=tmp_path / "chips")  # other bands: rebuilt
    assert other.x.shape[0] == 2
    # a chip is a slice of the raster: a 256 px chip of 11 bands in well under 0.05 s
    big = GridChips(training_raster(cube, region.truth_path, bands_of("BCD")), [(0, 0)], 256, 256,
                    gm.DEFAULT_NORMALIZATION)
    t = time.perf_counter()
    for _ in range(20):
        big[0]
    assert (time.perf_counter() - t) / 20 < 0.05


def test_band_groups():
    assert bands_of("AD") == ("VV", "VH", "elevation")
    assert bands_of("ABCD")[2:7] == ("B02", "B03", "B04", "B08", "B11")
    with pytest.raises(InvalidArgumentError, match="unknown group"):
        bands_of("AX")


def test_train_resume_and_evaluate_commands(region, stac_url, tmp_path):
    runner = CliRunner()
    out = tmp_path / "model.pt"
    train = ["train", *_args(region, stac_url), "--outlines", str(region.truth_path), "--model", "unet",
             "--preset", "tiny", "--bands", "BD", "--chip", str(CHIP), "--lr", "3e-3", "--out", str(out)]
    r = runner.invoke(main, [*train, "--epochs", "2"])
    assert r.exit_code == 0, r.output
    assert out.exists() and (tmp_path / "model.pt.run" / "chips" / "x.npy").exists()
    model = gm.load(out)
    assert model.arch == "unet" and list(model.bands) == list(bands_of("BD"))
    assert model.inputs["resolution"] == 10 and "sentinel-2" in model.inputs["sensors"]
    assert model.provenance["recipe"]["name"] == "cpu" and model.provenance["data"]["datetime"] == region.datetime
    assert len(model.provenance["history"]) <= 2

    r = runner.invoke(main, [*train, "--epochs", "3"])  # an existing run is never replaced silently
    assert r.exit_code == 2 and "resume" in r.output and "Traceback" not in r.output
    r = runner.invoke(main, [*train, "--epochs", "3", "--resume"])
    assert r.exit_code == 0, r.output
    state = torch.load(tmp_path / "model.pt.run" / "last.state.pt", weights_only=False)
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3]

    r = runner.invoke(main, ["evaluate", *_args(region, stac_url), "--model", str(out),
                             "--reference", str(region.truth_path), "--json", "--chunk", "256", "--window", "128",
                             "--overlap", "32"])
    assert r.exit_code == 0, r.output
    scores = json.loads(r.stdout)
    assert 0 <= scores["miou"] <= 1 and scores["n_pixels"] > 0.9 * region.shape[0] * region.shape[1]

    r = runner.invoke(main, ["evaluate", *_args(region, stac_url), "--model", "band-ratio",
                             "--reference", str(region.truth_path), "--tile", "256"])  # deprecated alias of --window
    assert r.exit_code == 0, r.output
    assert "warning: --tile is deprecated, use --window" in r.stderr
    iou = float(r.stdout.split("glacier IoU ")[1].split()[0])
    assert iou > 0.7  # band-ratio maps clean ice (not debris) on the synthetic region
    r = runner.invoke(main, ["evaluate", *_args(region, stac_url), "--model", "band-ratio",
                             "--reference", str(region.truth_path), "--tile", "256", "--window", "256"])
    assert r.exit_code == 2 and "pass only --window" in r.stderr and "Traceback" not in r.output


def test_train_checks_every_option_before_it_searches(region, tmp_path):
    runner = CliRunner()
    out = tmp_path / "m.pt"
    base = ["train", "--stac", "http://127.0.0.1:9", "--bbox", *map(str, region.bbox), "--datetime", region.datetime,
            "--outlines", str(region.truth_path), "--out", str(out)]  # nothing listens on port 9
    for extra, words in ((["--lr", "-1"], "--lr -1"), (["--epochs", "0"], "--epochs 0"), (["--chip", "100"], "multiple of 32"),
                         (["--bands", "BX"], "unknown group"), (["--model", "nope"], "unknown model"),
                         (["--init", "nope.tag"], "no shipped checkpoint")):
        r = runner.invoke(main, [*base, *extra])
        assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output, (extra, r.output)
        assert not out.exists() and not (tmp_path / "m.pt.run").exists()


def test_fine_tuning_with_new_bands_and_a_failed_run_exits_non_zero(region, stac_url, tmp_path, monkeypatch):
    import importlib

    fit_module = importlib.import_module("glacierxr.training.fit")  # the module, not the function it exports

    torch.manual_seed(0)
    start = gm.create("unet", bands=["B03", "B11"], preset="tiny")
    start.inputs = {"sensors": ["sentinel-2"], "resolution": 10.0}
    gm.save(start, tmp_path / "start.pt", provenance={"history": [{"epoch": 1}]})
    monkeypatch.setattr(fit_module, "FAILED_F1", 1.01)  # any run "fails": the exit path, not the model, is tested
    out = tmp_path / "tuned.pt"
    r = CliRunner().invoke(main, ["train", *_args(region, stac_url), "--outlines", str(region.truth_path),
                                  "--init", str(tmp_path / "start.pt"), "--bands", "B03,B11,elevation",
                                  "--epochs", "1", "--chip", "64", "--out", str(out)])
    assert r.exit_code == 3 and "maps (almost) no glacier" in r.stderr, r.output
    tuned = gm.load(out)
    assert tuned.bands == ("B03", "B11", "elevation") and tuned.provenance["recipe"]["name"] == "finetune"
    assert tuned.provenance["adapted_from"]["bands"] == ["B03", "B11"]
    assert tuned.normalization["B03"] == start.normalization["B03"]  # a trained model keeps its normalisation


def test_experiment_command_writes_tables_and_resumes(tmp_path):
    config = tmp_path / "exp.toml"
    config.write_text(
        'preset = "tiny"\nepochs = 1\nchip = 64\nlr = 1e-3\nseeds = [0]\nwindow = 128\noverlap = 32\n'

        "[train]\nsynthetic = { seed = 3, size = 256 }\n[test]\nsynthetic = { seed = 2, size = 320 }\n"
        '[[table]]\ntitle = "Models"\nmodels = ["band-ratio", "unet"]\nbands = ["BD"]\n'
        '[[table]]\ntitle = "Bands"\nmodels = ["unet"]\nbands = ["BD", "ABCD"]\n'
    )
    out = tmp_path / "exp"
    r = CliRunner().invoke(main, ["experiment", "--config", str(config), "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 3  # band-ratio, unet BD (shared by both tables), unet ABCD
    tables = (out / "tables.md").read_text()
    assert "### Models" in tables and "### Bands" in tables and "| unet | ABCD |" in tables
    rec = [json.loads(line) for line in lines]
    assert all(0 <= r["miou"] <= 1 and r["iou_debris"] is not None for r in rec)
    assert next(r for r in rec if r["model"] == "unet")["params_m"] > 0
    r = CliRunner().invoke(main, ["experiment", "--config", str(config), "--out", str(out), "--quiet"])
    assert r.exit_code == 0 and len((out / "results.jsonl").read_text().splitlines()) == 3  # nothing re-run


def test_experiment_rejects_unknown_band_group_before_training(tmp_path):
    from glacierxr.training import run_experiment

    cfg = {"train": {"synthetic": {"seed": 1}}, "test": {"synthetic": {"seed": 2}},
           "table": [{"models": ["unet"], "bands": ["BX"]}]}
    with pytest.raises(InvalidArgumentError, match="unknown group"):
        run_experiment(cfg, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_multiband_asset_by_band_configuration(tmp_path):
    """One RGB GeoTIFF + one NIR GeoTIFF, read by a sensor spec that names bands of the RGB asset."""
    import rasterio
    from rasterio.transform import from_origin

    from glacierxr.catalog import item_from_files
    from glacierxr.sensors import BandSpec, SensorSpec, register

    rng = np.random.default_rng(0)
    rgb = rng.integers(1, 255, (3, 40, 50), dtype=np.uint8)
    nir = rng.integers(1, 255, (40, 50), dtype=np.uint8)
    profile = dict(driver="GTiff", width=50, height=40, dtype="uint8", crs="EPSG:32645",
                   transform=from_origin(480000, 3100020, 30, 30))
    with rasterio.open(tmp_path / "rgb.tif", "w", count=3, **profile) as dst:
        dst.write(rgb)
    with rasterio.open(tmp_path / "nir.tif", "w", count=1, **profile) as dst:
        dst.write(nir, 1)
    register(SensorSpec(name="test-rgbn", kind="optical", collections={"local": "test-rgbn"},
                        bands=(BandSpec("B04", ("rgb",), 30, 1 / 255, index=1),
                               BandSpec("B03", ("rgb",), 30, 1 / 255, index=2),
                               BandSpec("B02", ("rgb",), 30, 1 / 255, index=3),
                               BandSpec("B08", ("nir",), 30, 1 / 255))), replace=True)
    item = item_from_files("scene", {"rgb": tmp_path / "rgb.tif", "nir": tmp_path / "nir.tif"},
                           datetime="2000-10-30T04:30:00", collection="test-rgbn")
    cube = gx.open_cube([item], bbox=item.bbox, resolution=30, crs="EPSG:32645", chunks=32, indices=False)
    sub = cube.sel(x=slice(480000, 481500), y=slice(3100020, 3098820)).compute()
    assert sub.sizes == {"y": 40, "x": 50}
    for name, want in (("B04", rgb[0]), ("B03", rgb[1]), ("B02", rgb[2]), ("B08", nir)):
        np.testing.assert_allclose(sub[name].values, want / 255, rtol=1e-6)
