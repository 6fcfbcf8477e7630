"""Training on the synthetic region: chips from the lazy cube and the true outlines, a few epochs of
the tiny LGT+LGCB model: the loss goes down, validation mIoU goes up, and a seed fixes the history."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import torch

import glacierxr as gx
import glacierxr.models as gm
from glacierxr.training import ChipDataset, chip_windows, rasterize_labels, train

BANDS = ["B02", "B03", "B04", "B08", "B11", "elevation", "NDVI", "NDSI", "NDWI"]
CHIP = 64


@pytest.fixture(scope="module")
def cube(region, stac_url):
    items = gx.search(stac_url, bbox=region.bbox, datetime=region.datetime, sensors=("sentinel-2", "dem"))
    return gx.open_cube(items, bbox=region.bbox, chunks=128).persist()


@pytest.fixture(scope="module")
def labels(region, cube):
    return rasterize_labels(gpd.read_file(region.truth_path, layer="glaciers"), cube["B02"])


def test_labels_match_synthetic_truth(region, labels):
    h, w = region.shape
    t = region.transform
    truth = region.arrays["glacier"].astype(bool)
    # the cube's grid covers the bbox (a few px more than the region's raster): compare at the region's pixels
    on_truth = labels.sel(y=t.f + t.e * (np.arange(h) + 0.5), x=t.c + t.a * (np.arange(w) + 0.5), method="nearest")
    agree = (on_truth.values.astype(bool) == truth).mean()
    assert labels.dtype == np.uint8 and truth.any() and agree > 0.98


def datasets(cube, labels, model):
    tr, va = chip_windows(labels.shape, CHIP, val_fraction=0.3, seed=0)
    assert not set(tr) & set(va) and 0.2 <= len(va) / (len(tr) + len(va)) <= 0.4
    make = lambda w: ChipDataset(cube, labels, w, model.bands, model.normalization, chip=CHIP)  # noqa: E731
    return make(tr), make(va)


def lgt(seed=0):
    torch.manual_seed(seed)
    return gm.create("lgt-lgcb", bands=BANDS, preset="tiny")


def test_training_learns(cube, labels, tmp_path):
    model = lgt()
    tr, va = datasets(cube, labels, model)
    x, y = tr[0]
    assert x.shape == (len(BANDS), CHIP, CHIP) and torch.isfinite(x).all() and y.dtype == torch.int64
    hist = train(model, tr, va, epochs=10, batch_size=4, lr=3e-3, seed=0, device="cpu", progress=False,
                 checkpoint_dir=tmp_path)
    first, last = hist[0], hist[-1]
    assert last["train_loss"] < first["train_loss"]
    # the full-resolution refinement maps well after one epoch already (mIoU ~0.8); it still gains
    assert last["train_loss"] < 0.7 * first["train_loss"] and max(h["miou"] for h in hist) > first["miou"] + 0.02
    best = gm.load(tmp_path / "best.pt")
    assert best.provenance["metrics"]["miou"] == pytest.approx(max(h["miou"] for h in hist))


def test_same_seed_same_history(cube, labels):
    runs = []
    for _ in range(2):
        model = lgt(1)
        tr, va = datasets(cube, labels, model)
        hist = train(model, tr, va, epochs=1, lr=1e-3, seed=3, device="cpu", progress=False)
        runs.append([{k: v for k, v in h.items() if k != "seconds"} for h in hist])
    assert runs[0] == runs[1]
