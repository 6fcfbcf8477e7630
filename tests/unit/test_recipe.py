"""The training recipe pieces: named recipes, balanced chips from a training raster, the ignore
label, warm-up / early stopping / time limit in the loop, band transfer and the input check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import glacierxr.models as gm
from glacierxr.errors import InvalidArgumentError, ModelConfigError, ModelInputError
from glacierxr.training import IGNORE, GridChips, RandomChips, TrainingRaster, dice_ce_loss, recipe, train
from glacierxr.training.sampling import hard_pixels, split_blocks, window_weights

from .test_training import Squares, unet


def test_recipes_and_overrides():
    cpu = recipe()
    assert cpu.name == "cpu" and cpu.lr > 1e-4 and cpu.warmup > 0 and cpu.sampling == "balanced" and cpu.time_limit
    paper = recipe("paper")
    assert (paper.lr, paper.batch_size, paper.chip, paper.warmup, paper.per_epoch) == (1e-4, 4, 256, 0.0, None)
    assert recipe("cpu", epochs=3, lr=None).epochs == 3 and recipe("cpu", lr=None).lr == cpu.lr
    for bad, match in (({"lr": -1.0}, "lr"), ({"chip": 100}, "multiple of 32"), ({"epochs": 0}, "epochs")):
        with pytest.raises(InvalidArgumentError, match=match):
            recipe("cpu", **bad)
    with pytest.raises(InvalidArgumentError, match="unknown recipe"):
        recipe("fast")
    with pytest.raises(InvalidArgumentError, match="do not exist"):
        recipe("cpu", learning_rate=1.0)


def raster(h=256, w=256, lake=(150, 150, 20)) -> TrainingRaster:
    """Green/SWIR bands: clean ice (NDSI 0.9) on the left half, rock right, one 'lake' (NDSI 0.9, background)."""
    green, swir = np.full((h, w), 0.15, np.float32), np.full((h, w), 0.3, np.float32)
    y = np.zeros((h, w), np.uint8)
    green[:, : w // 2], swir[:, : w // 2], y[:, : w // 2] = 0.5, 0.02, 1
    r, c, s = lake
    green[r:r + s, c:c + s], swir[r:r + s, c:c + s] = 0.13, 0.01
    x = np.stack([green, swir])
    x[:, :8, :8] = np.nan  # no data
    y[:8, :8] = IGNORE
    return TrainingRaster(("B03", "B11"), x, y)


def test_hard_pixels_and_weights():
    ras = raster()
    hard = hard_pixels(ras)
    assert hard[150:170, 150:170].all() and hard.sum() == 400  # the lake, nothing else
    origins = np.array([(16, 16), (128, 140), (128, 190), (0, 96)])  # ice, lake, rock, the ice edge
    w = window_weights(ras, origins, 64)
    # the window with the lake weighs most, the one on the ice edge more than plain ice or rock
    assert w[1] == w.max() and w[3] > w[0] == w[2] == 1.0
    assert window_weights(ras, np.array([(0, 0)]), 8)[0] == 0.0  # no valid pixel
    u = window_weights(ras, origins, 64, edge=0, hard=0)
    assert (u == 1).all()


def test_random_chips_stay_in_training_blocks_and_are_seeded():
    ras = raster(512, 512, lake=(300, 300, 20))
    block, train_o, val_o = split_blocks(ras.shape, 128, val_fraction=0.25, seed=0)
    norm = ras.statistics(train_o, block)
    ds = RandomChips(ras, train_o, block, 64, norm, per_epoch=200, seed=1)
    val = {(r // block, c // block) for r, c in val_o}
    for epoch in range(3):
        ds.set_epoch(epoch)
        for r, c in ds.windows:  # inside one training block: never touching a validation block
            assert (r // block, c // block) == ((r + 63) // block, (c + 63) // block)
            assert (r // block, c // block) not in val
    first = list(ds.windows)
    ds.set_epoch(0)
    a = list(ds.windows)
    ds.set_epoch(1)
    assert a != ds.windows and RandomChips(ras, train_o, block, 64, norm, per_epoch=200, seed=1).windows == a
    ds.set_epoch(2)
    assert first == ds.windows  # epoch 2 again: the same chips (a resumed run sees what it would have)
    x, y = ds[0]
    assert x.shape == (2, 64, 64) and torch.isfinite(x).all() and y.dtype == torch.int64
    grid = GridChips(ras, val_o, block, 64, norm)
    assert len(grid) == 4 * len(val_o)


def test_balanced_sampling_over_samples_the_rare_hard_pixels():
    ras = raster(512, 512, lake=(300, 300, 20))
    block, train_o, _ = split_blocks(ras.shape, 128, val_fraction=0.0, seed=0)
    norm = ras.statistics()

    def lake_share(sampling):
        ds = RandomChips(ras, train_o, block, 64, norm, per_epoch=2000, sampling=sampling, seed=0)
        return np.mean([r <= 319 and r + 64 > 300 and c <= 319 and c + 64 > 300 for r, c in ds.windows])

    assert lake_share("balanced") > 3 * lake_share("uniform")


def test_ignored_pixels_count_nowhere():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 8, 8)
    target = torch.randint(0, 2, (2, 8, 8))
    ignored = target.clone()
    ignored[:, :4] = IGNORE
    changed = logits.clone()
    changed[:, :, :4] = 100 * torch.randn(2, 2, 4, 8)  # anything where ignored
    assert torch.allclose(dice_ce_loss(logits, ignored), dice_ce_loss(changed, ignored))
    assert not torch.allclose(dice_ce_loss(logits, ignored), dice_ce_loss(logits, target))
    assert float(dice_ce_loss(logits, torch.full_like(target, IGNORE))) == 0.0


def test_warmup_patience_and_time_limit():
    tr, va = Squares(8, 0), Squares(4, 1)
    h = train(unet(), tr, va, epochs=5, lr=1e-3, warmup=0.5, batch_size=4, seed=0, device="cpu", progress=False)
    lrs = [r["lr"] for r in h]  # 2 steps per epoch, 10 in all, 5 of warm-up: 1/5, 3/5, then the cosine
    assert lrs[0] == pytest.approx(2e-4) and lrs[1] == pytest.approx(6e-4) and lrs[3] < lrs[2]
    assert h[-1]["stopped"] == "epochs"
    # a patience of 1 with validation that cannot improve (no glacier in it at all): stops after 2 epochs
    empty = [(x, torch.zeros_like(y)) for x, y in Squares(4, 2)]
    h = train(unet(), tr, empty, epochs=20, lr=1e-9, patience=1, seed=0, device="cpu", progress=False)
    assert len(h) == 2 and h[-1]["stopped"] == "patience"
    h = train(unet(), tr, va, epochs=50, lr=1e-3, time_limit=1e-6, seed=0, device="cpu", progress=False)
    assert len(h) == 1 and h[-1]["stopped"] == "time_limit"


def test_with_bands_keeps_what_the_shared_bands_compute():
    old = gm.create("lgt-lgcb", bands=["B02", "B03", "B04", "B08", "B11", "elevation"], preset="tiny").eval()
    new = gm.with_bands(old, ["B04", "B03", "B02", "B08", "extra"]).eval()
    assert new.bands == ("B04", "B03", "B02", "B08", "extra") and new.normalization["B02"] == old.normalization["B02"]
    x = torch.randn(1, 6, 64, 64)
    x[:, 4:] = 0  # the bands the new model drops, read as 0 by the old one
    xn = torch.stack([x[0, 2], x[0, 1], x[0, 0], x[0, 3], torch.randn(64, 64)])[None]
    with torch.no_grad():
        assert torch.allclose(old(x), new(xn), atol=1e-4)
    with pytest.raises(ModelConfigError, match="none of them"):
        gm.with_bands(old, ["VV"])


def test_checkpoints_record_inputs_and_predict_refuses_other_data(tmp_path):
    model = gm.create("unet", bands=["B03", "B11"], preset="tiny")
    model.inputs = {"sensors": ["landsat7"], "resolution": 30.0, "units": {"B03": "1", "B11": "1"}}
    path = gm.save(model, tmp_path / "m.pt")
    loaded = gm.load(path)
    assert loaded.inputs == model.inputs
    y, x = 5.0 + 10 * np.arange(64)[::-1], 5.0 + 10 * np.arange(64)
    cube = xr.Dataset({b: (("y", "x"), np.random.default_rng(0).random((64, 64), np.float32)) for b in ("B03", "B11")},
                      coords={"y": y, "x": x}, attrs={"resolution": 10.0, "source_items": {"sentinel-2": []}})
    with pytest.raises(ModelInputError, match="resolution=30") as err:
        cube.glacier.predict(loaded, window=64, overlap=0)
    assert "landsat7" in str(err.value)
    prob = cube.glacier.predict(loaded, window=64, overlap=0, check_inputs=False)
    assert prob.shape == (64, 64)
    with pytest.raises(ModelInputError, match="30 m"):
        gm.inputs.check_resolution(loaded, 10)
    gm.inputs.check_resolution(loaded, 30)
