# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     name: python3
#     display_name: Python 3
# ---

# %% [markdown]
# # 2. Train a model and compare it with the band ratio
#
# The paper (Peng et al. 2023, Table 2) compares learned models with the classic band-ratio
# method on a test region that none of them was trained on. This example does the same in
# miniature, on CPU in about a minute:
#
# * **training region**: synthetic region seed 2 (512 x 512 px at 10 m, the region of
#   example 1) and its true outlines,
# * **test region**: synthetic region seed 5 (384 x 384 px), with clean and debris-covered ice,
# * **models**: a *tiny* DeepLabv3+ trained for a few epochs on Sentinel-2 bands + elevation,
#   against the band ratio. Set `MODEL = "lgt-lgcb"` for the paper's Transformer (about four
#   times slower per epoch on a CPU).
#
# The numbers are a demonstration, not a benchmark: a tiny model, ~15 epochs and 26 km² of
# training data. On these synthetic scenes clean ice is spectrally easy and the band ratio is
# hard to beat. Trained longer on more data, the learned models win where the band ratio is
# blind: debris-covered ice. `glacierxr experiment --config benchmarks/experiments/table2_tiny.toml`
# (tiny models, 80 epochs on a 1024 x 1024 px region, about half an hour on 2 CPU cores) gives
# the paper's Table 2 in miniature; see `benchmarks/experiments/RESULTS.md`.
#
# Outputs go to `$GLACIERXR_EXAMPLES_OUT/02_train_and_compare`.

# %%
import os
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import torch
import xarray as xr

import glacierxr as gx
from glacierxr.stac_server import serve
from glacierxr.synthetic import make_region
from glacierxr.training import BAND_GROUPS, fit

OUT = Path(os.environ.get("GLACIERXR_EXAMPLES_OUT", "examples-output")) / "02_train_and_compare"
OUT.mkdir(parents=True, exist_ok=True)
MODEL = os.environ.get("GLACIERXR_EXAMPLE_MODEL", "deeplabv3plus")  # any of gx.models.available()
EPOCHS = int(os.environ.get("GLACIERXR_EXAMPLE_EPOCHS", "15"))  # more epochs: better model, longer run
t0 = time.perf_counter()
# One torch thread: tiny models gain little from more, and on a busy machine several torch threads
# spin-wait for each other (we measured 10 s with one thread against 4 min with two on a loaded
# 2-core machine). On a GPU or for larger models, leave torch its default.
torch.set_num_threads(1)


# %% [markdown]
# ## Two regions
#
# Small synthetic regions may hold no glacier at all, so check the true glacier and debris
# cover before training on one.

# %%
def region_cube(seed: int, size: int):
    """A synthetic region and its lazy datacube (Sentinel-2 + DEM)."""
    region = make_region(OUT / f"region-{seed}", seed=seed, shape=(size, size))
    with serve(region.stac_dir) as url:
        items = gx.search(url, bbox=region.bbox, datetime=region.datetime, sensors=("sentinel-2", "dem"))
    cube = gx.open_cube(items, bbox=region.bbox, resolution=10, chunks=128)
    print(f"{region.name}: {size} x {size} px, glacier {region.arrays['glacier'].mean():.0%} of the area, "
          f"debris-covered ice {region.arrays['debris'].mean():.1%}")
    return region, cube.persist()  # small: keep it in memory for the training epochs


train_region, train_cube = region_cube(seed=2, size=512)
test_region, test_cube = region_cube(seed=7, size=384)

# %% [markdown]
# ## Train
#
# `fit` burns the outlines into labels on the cube's grid, computes the cube's bands once (a
# training raster beside the checkpoint), splits it into spatial blocks (80 % training, 20 %
# validation, so neighbouring pixels do not leak across the split), sets the per-band
# normalisation from the training blocks, and trains with the "cpu" recipe: random chips that
# over-sample glacier edges and hard pixels, D4 augmentation, a Dice + cross-entropy loss,
# warm-up and cosine decay. It keeps the epoch with the best validation mIoU as a checkpoint
# (weights, bands, normalisation, inputs and provenance in one file). Here the recipe is
# shortened to EPOCHS epochs of 64 px chips; with no option it runs up to 12 minutes.
#
# Bands are the paper's groups B (Sentinel-2 B02 B03 B04 B08 B11) and D (elevation).

# %%
bands = BAND_GROUPS["B"] + BAND_GROUPS["D"]
torch.manual_seed(0)
model = gx.models.create(MODEL, bands=bands, preset="tiny")
print(f"model: {MODEL} (tiny), {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, bands {bands}")
checkpoint = OUT / f"{MODEL}-tiny.pt"
history = fit(train_cube, train_region.truth_path, model, out=checkpoint, epochs=EPOCHS, chip=64, seed=0,
              overwrite=True, progress=False)  # the "cpu" recipe, shortened to EPOCHS and 64 px chips
for h in history:
    print(f"epoch {h['epoch']}: train loss {h['train_loss']:.3f}, validation mIoU {h['miou'] or 0:.3f}, {h['seconds']:.1f} s")


# %% [markdown]
# ## Compare on the test region
#
# Both models predict the unseen test region with the same `cube.glacier.predict` call and are
# scored against its true outlines. The synthetic truth also says which glacier pixels are
# debris-covered, so we also report the share of them each model finds (debris recall):
# band ratios miss debris-covered ice, which looks like rock in the optical bands; learned
# models can use elevation and context, given enough training.

# %%
def debris_on_grid(region, like: xr.DataArray) -> np.ndarray:
    """The region's true debris mask on the cube's grid (the cube's bounds are snapped outward)."""
    t = region.transform
    h, w = region.arrays["debris"].shape
    mask = xr.DataArray(region.arrays["debris"], dims=("y", "x"),
                        coords={"y": t.f + t.e * (np.arange(h) + 0.5), "x": t.c + t.a * (np.arange(w) + 0.5)})
    return mask.reindex_like(like, method="nearest", tolerance=t.a / 2, fill_value=False).values.astype(bool)


truth = gpd.read_file(test_region.truth_path)
debris = debris_on_grid(test_region, test_cube["B02"])
rows = []
for name, m in [("band-ratio", gx.models.create("band-ratio", bands=["B03", "B04", "B08", "B11"])),
                (f"{MODEL} tiny", gx.models.load(checkpoint))]:
    prob = test_cube.glacier.predict(m, window=128, overlap=32).compute()
    s = gx.evaluate(prob, truth, objects=False)
    rows.append((name, s["oa"], s["f1"]["glacier"], s["iou"]["glacier"], s["miou"],
                 float((prob.values[debris] >= 0.5).mean()) if debris.any() else float("nan")))

table = ["| method | OA | glacier F1 | glacier IoU | mIoU | debris recall |", "|---|---|---|---|---|---|"]
table += [f"| {r[0]} | {r[1]:.3f} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.2f} |" for r in rows]
(OUT / "table.md").write_text("\n".join(table) + "\n")
print("\n".join(table))
print(f"checkpoint {checkpoint}\ntable      {OUT / 'table.md'}")
print(f"done in {time.perf_counter() - t0:.1f} s")
