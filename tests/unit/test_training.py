"""Training pieces: label rasterisation, blocked split, D4 alignment, Dice + CE, and the loop."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401
import torch
import xarray as xr
from shapely.geometry import box

import glacierxr.models as gm
from glacierxr.errors import CRSError, InvalidArgumentError, MissingBandError
from glacierxr.training import (
    ChipDataset,
    RandomD4,
    chip_windows,
    d4,
    dice_ce_loss,
    random_d4,
    rasterize_labels,
    state_path,
    train,
)

X0, Y0, RES = 500_000.0, 3_100_000.0, 10.0


def grid(h=20, w=30, crs="EPSG:32645") -> xr.DataArray:
    y = Y0 - RES * (np.arange(h) + 0.5)
    x = X0 + RES * (np.arange(w) + 0.5)
    return xr.DataArray(np.zeros((h, w), np.float32), dims=("y", "x"), coords={"y": y, "x": x}).rio.write_crs(crs)


# ---------------------------------------------------------------- labels


def test_rasterize_known_square():
    like = grid()
    # rows 3..7, cols 5..11 fully, plus an edge that only reaches 40 % into the next pixel (centre rule: out)
    square = box(X0 + 5 * RES, Y0 - 8 * RES, X0 + 12.4 * RES, Y0 - 3 * RES)
    labels = rasterize_labels(gpd.GeoDataFrame(geometry=[square], crs="EPSG:32645"), like)
    expected = np.zeros((20, 30), np.uint8)
    expected[3:8, 5:12] = 1
    assert labels.dtype == np.uint8 and labels.dims == ("y", "x")
    np.testing.assert_array_equal(labels.values, expected)
    assert labels.rio.crs == like.rio.crs
    np.testing.assert_array_equal(labels["x"].values, like["x"].values)


def test_rasterize_reprojects_outlines():
    like = grid()
    square = gpd.GeoDataFrame(geometry=[box(X0 + 5 * RES, Y0 - 8 * RES, X0 + 12 * RES, Y0 - 3 * RES)],
                              crs="EPSG:32645").to_crs("EPSG:4326")
    labels = rasterize_labels(square, like)
    expected = np.zeros((20, 30), np.uint8)
    expected[3:8, 5:12] = 1
    # a square in UTM is not exactly a square in lon/lat, but the pixel centres are 5 m from its edges
    np.testing.assert_array_equal(labels.values, expected)


def test_rasterize_needs_crs():
    like = xr.DataArray(np.zeros((4, 4)), dims=("y", "x"), coords={"y": np.arange(4.0)[::-1], "x": np.arange(4.0)})
    with pytest.raises(CRSError):
        rasterize_labels(gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)], crs="EPSG:32645"), like)


# ---------------------------------------------------------------- split


@pytest.mark.parametrize("shape,chip,frac,block", [((384, 384), 64, 0.3, None), ((1000, 700), 50, 0.3, 3),
                                                   ((512, 512), 32, 0.2, 4), ((640, 640), 64, 0.5, 2)])
def test_blocked_split(shape, chip, frac, block):
    train_w, val_w = chip_windows(shape, chip, val_fraction=frac, block=block, seed=3)
    n = (shape[0] // chip) * (shape[1] // chip)
    assert len(train_w) + len(val_w) == n
    assert not set(train_w) & set(val_w)
    b = block or 2
    # no pixel overlap between any train and val chip, and all chips inside the grid
    for r, c in train_w + val_w:
        assert r % chip == 0 and c % chip == 0 and r + chip <= shape[0] and c + chip <= shape[1]
    tb = {(r // chip // b, c // chip // b) for r, c in train_w}
    vb = {(r // chip // b, c // chip // b) for r, c in val_w}
    assert not tb & vb, "a block was split between train and val"
    assert abs(len(val_w) / n - frac) <= b * b / n / 2 + 1e-9 or abs(len(val_w) / n - frac) < 0.1


def test_split_is_seeded_and_validates():
    assert chip_windows((384, 384), 64, seed=1) == chip_windows((384, 384), 64, seed=1)
    assert chip_windows((384, 384), 64, seed=1) != chip_windows((384, 384), 64, seed=2)
    train_w, val_w = chip_windows((384, 384), 64, val_fraction=0.0)
    assert len(train_w) == 36 and val_w == []
    with pytest.raises(InvalidArgumentError, match="chip"):
        chip_windows((30, 30), 64)
    with pytest.raises(InvalidArgumentError, match="val_fraction"):
        chip_windows((384, 384), 64, val_fraction=1.0)


# ---------------------------------------------------------------- dataset


def test_chip_dataset_normalises_and_fills_nan():
    like = grid(64, 64)
    a = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    a[0, 0] = np.nan
    cube = xr.Dataset({"B02": like.copy(data=a).chunk(16), "B03": like.copy(data=np.full((64, 64), 4.0, np.float32))})
    labels = like.copy(data=(a > 100).astype(np.uint8))
    ds = ChipDataset(cube, labels, [(0, 0), (32, 32)], ["B03", "B02"], {"B02": (10.0, 2.0), "B03": (0.0, 4.0)}, chip=32)
    x, y = ds[0]
    assert x.dtype == torch.float32 and x.shape == (2, 32, 32) and y.dtype == torch.int64 and y.shape == (32, 32)
    assert float(x[0, 5, 5]) == 1.0 and float(x[1, 0, 0]) == 0.0 and float(x[1, 0, 1]) == (1 - 10) / 2
    x1, y1 = ds[1]
    assert float(x1[1, 0, 0]) == (a[32, 32] - 10) / 2 and int(y1.sum()) == 32 * 32
    with pytest.raises(MissingBandError):
        ChipDataset(cube, labels, [(0, 0)], ["B04"], {"B04": (0, 1)}, chip=32)
    with pytest.raises(InvalidArgumentError, match="outside"):
        ChipDataset(cube, labels, [(40, 0)], ["B02"], {"B02": (0, 1)}, chip=32)


# ---------------------------------------------------------------- augmentation


@pytest.mark.parametrize("k", range(8))
def test_d4_keeps_x_and_y_aligned(k):
    x = torch.zeros(3, 8, 8)
    y = torch.zeros(8, 8, dtype=torch.int64)
    x[:, 0, 1] = torch.tensor([1.0, 2.0, 3.0])  # a marked pixel near the top-left corner, off the diagonal
    y[0, 1] = 1
    xt, yt = d4(x, y, k)
    pos_x = torch.nonzero(xt[0]).tolist()
    pos_y = torch.nonzero(yt).tolist()
    assert pos_x == pos_y and len(pos_y) == 1
    assert xt[:, pos_y[0][0], pos_y[0][1]].tolist() == [1.0, 2.0, 3.0]


def test_d4_elements_are_distinct_and_seeded():
    y = torch.arange(16).reshape(4, 4)
    outs = {tuple(d4(y[None].float(), y, k)[1].flatten().tolist()) for k in range(8)}
    assert len(outs) == 8
    xb, yb = torch.rand(6, 2, 8, 8), torch.randint(0, 2, (6, 8, 8))
    a = random_d4(xb, yb, torch.Generator().manual_seed(0))
    b = random_d4(xb, yb, torch.Generator().manual_seed(0))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    t1, t2 = RandomD4(5), RandomD4(5)
    assert all(torch.equal(t1(xb[0], yb[0])[1], t2(xb[0], yb[0])[1]) for _ in range(5))


# ---------------------------------------------------------------- loss


def test_dice_ce_loss():
    target = torch.randint(0, 2, (2, 16, 16))
    perfect = torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).float() * 40 - 20
    wrong = -perfect
    lp, lw = dice_ce_loss(perfect, target), dice_ce_loss(wrong, target)
    assert float(lp) < 1e-6
    assert float(lw) > 1.0
    logits = torch.zeros(2, 2, 16, 16, requires_grad=True)
    loss = dice_ce_loss(logits, target)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        dice_ce_loss(torch.zeros(2, 2, 8, 8), torch.zeros(2, 4, 4, dtype=torch.int64))


# ---------------------------------------------------------------- loop (tiny in-memory data)


class Squares(torch.utils.data.Dataset):
    """Seeded chips: one bright square on noise, labelled 1."""

    def __init__(self, n, seed, size=32):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            y = torch.zeros(size, size, dtype=torch.int64)
            r, c = torch.randint(0, size - 12, (2,), generator=g).tolist()
            y[r:r + 12, c:c + 12] = 1
            x = torch.randn(1, size, size, generator=g) * 0.3 + y[None].float() * 2
            self.items.append((x, y))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def unet(seed=0):
    torch.manual_seed(seed)
    return gm.create("unet", bands=["B02"], preset="tiny")


def test_train_resume_and_checkpoints(tmp_path):
    tr, va = Squares(8, 0), Squares(4, 1)
    full = train(unet(), tr, va, epochs=3, lr=1e-3, seed=7, device="cpu", progress=False, checkpoint_dir=tmp_path / "a")
    assert [h["epoch"] for h in full] == [1, 2, 3]
    assert {"train_loss", "val_loss", "oa", "f1_glacier", "miou", "lr", "seconds"} <= set(full[0])
    last = gm.load(tmp_path / "a" / "last.pt")
    assert last.provenance["seed"] == 7 and last.provenance["epochs"] == 3
    assert len(last.provenance["train_losses"]) == 3 and "miou" in last.provenance["metrics"]
    assert (tmp_path / "a" / "best.pt").exists() and state_path(tmp_path / "a" / "last.pt").exists()

    # 2 epochs, then resume to 3: the same history as 3 in one go
    part = train(unet(), tr, va, epochs=3, lr=1e-3, seed=7, device="cpu", progress=False, checkpoint_dir=tmp_path / "b")
    two = train(unet(), tr, va, epochs=2, lr=1e-3, seed=7, device="cpu", progress=False, checkpoint_dir=tmp_path / "c")
    # a run of 2 epochs has a different cosine schedule; resuming from it with epochs=3 continues its state
    resumed = train(unet(99), tr, va, epochs=3, lr=1e-3, seed=7, device="cpu", progress=False,
                    resume=tmp_path / "c" / "last.pt")
    assert [h["epoch"] for h in resumed] == [1, 2, 3]
    drop = lambda hs: [{k: v for k, v in h.items() if k != "seconds"} for h in hs]  # noqa: E731
    assert drop(resumed[:2]) == drop(two)
    assert drop(part) == drop(full)
    again = train(unet(), tr, va, epochs=3, seed=7, device="cpu", progress=False, resume=tmp_path / "a" / "last.pt")
    assert drop(again) == drop(full)  # nothing left to run: the stored history comes back
    assert 0 < resumed[2]["lr"] < resumed[1]["lr"] < 1e-3  # the schedule, stretched to 3 epochs, goes on

    # weights-only resume from a checkpoint without state: starts at epoch 1 from those weights
    m = unet(5)
    gm.save(gm.load(tmp_path / "a" / "best.pt"), tmp_path / "w.pt")
    h = train(m, tr, va, epochs=1, lr=1e-3, seed=7, device="cpu", progress=False, resume=tmp_path / "w.pt")
    assert h[0]["epoch"] == 1


def test_train_validates_arguments():
    with pytest.raises(InvalidArgumentError, match="epochs"):
        train(unet(), Squares(2, 0), None, epochs=0, progress=False)
    with pytest.raises(InvalidArgumentError, match="empty"):
        train(unet(), Squares(0, 0), None, epochs=1, progress=False)


def test_without_a_terminal_progress_is_one_whole_line_per_epoch(capsys):
    from glacierxr.training.loop import _Progress

    bar = _Progress(True, total=10, done=0)  # pytest's stderr is not a terminal
    assert bar.bar is None
    bar.step(0, 2, 0.5, "")
    record = {"epoch": 1, "train_loss": 0.5, "val_loss": 0.4, "oa": 0.9, "f1_glacier": 0.8, "miou": 0.7}
    bar.epoch(record)
    bar.close()
    err = capsys.readouterr().err
    assert err == "epoch 1: train loss 0.5000 | val loss 0.4000 OA 0.900 F1 0.800 mIoU 0.700\n"
