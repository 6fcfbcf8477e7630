# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     name: python3
#     display_name: Python 3
# ---

# %% [markdown]
# # 4. Another sensor, by configuration: a Landsat 7 scene of the Everest region
#
# glacierxr is not tied to Sentinel-2. A sensor is a `SensorSpec`: which asset holds each
# band, and how to turn its numbers into reflectance. This example reads a real scene that is
# not in any STAC catalogue, maps its glaciers and scores them against RGI 6.0:
#
# * **data**: Landsat 7 ETM+ scene LE71400412000304SGS00 (30 October 2000, 30 m, UTM 45N) as an
#   8-bit stretched RGB GeoTIFF plus band 4 (near infrared), and the RGI 6.0 outlines of the
#   region (RGI Consortium 2017, CC-BY-4.0). Both come from GlacioHack/geoutils-data. There
#   is no SWIR band, so no band ratio; many tongues are debris-covered.
# * **baseline**: a brightness threshold ((R + G + B) / 3), fitted on the west half.
# * **model**: a tiny DeepLabv3+ trained for a few epochs on the west half, evaluated on the
#   east half.
#
# The data lives in the project's shared folder (`../shared/data/real/everest_landsat7` next
# to the repository; set `GLACIERXR_SHARED` to another `shared` folder). Without it the
# example says so and stops.
#
# Outputs go to `$GLACIERXR_EXAMPLES_OUT/04_other_sensor_everest`.

# %%
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()  # examples/
SHARED = Path(os.environ.get("GLACIERXR_SHARED", HERE.parent.parent / "shared"))
DATA = SHARED / "data" / "real" / "everest_landsat7"
SCENE = "LE71400412000304SGS00"
if not (DATA / f"{SCENE}_RGB.tif").exists():
    print(f"no data: the Everest Landsat 7 scene is not at {DATA}; set GLACIERXR_SHARED to the folder "
          "holding data/real/everest_landsat7 to run this example. Skipping.")
    sys.exit(0)

# %%
import geopandas as gpd
import numpy as np
import torch

import glacierxr as gx
from glacierxr.catalog import item_from_files
from glacierxr.quicklook import quicklook
from glacierxr.sensors import BandSpec, SensorSpec, register
from glacierxr.training import fit, rasterize_labels

OUT = Path(os.environ.get("GLACIERXR_EXAMPLES_OUT", "examples-output")) / "04_other_sensor_everest"
OUT.mkdir(parents=True, exist_ok=True)
EPOCHS = int(os.environ.get("GLACIERXR_EXAMPLE_EPOCHS", "15"))
t0 = time.perf_counter()
# One torch thread: tiny models gain little from more, and on a busy machine several torch threads
# spin-wait for each other (we measured 10 s with one thread against 4 min with two on a loaded
# 2-core machine). On a GPU or for larger models, leave torch its default.
torch.set_num_threads(1)

# %% [markdown]
# ## The sensor, as configuration
#
# Each `BandSpec` names a cube variable, the asset it is read from, its resolution and the
# scale to reflectance-like values (here 8-bit digital numbers / 255). `index=` picks a band
# of a multi-band asset: red, green and blue are bands 1, 2 and 3 of the RGB GeoTIFF. The
# variables take Sentinel-2 names (B04 red, B03 green, B02 blue, B08 NIR) so that models and
# indices find them. `collections` ties the spec to the items' collection id.

# %%
LANDSAT7_STRETCHED = SensorSpec(
    name="landsat7-stretched-rgbn", kind="optical", collections={"local": "everest-landsat7"},
    bands=(BandSpec("B04", ("rgb",), 30, 1 / 255, index=1),
           BandSpec("B03", ("rgb",), 30, 1 / 255, index=2),
           BandSpec("B02", ("rgb",), 30, 1 / 255, index=3),
           BandSpec("B08", ("nir",), 30, 1 / 255)),
)
register(LANDSAT7_STRETCHED, replace=True)

# A STAC item describing the two local files; in a real catalogue you would search instead.
item = item_from_files(SCENE, {"rgb": DATA / f"{SCENE}_RGB.tif", "nir": DATA / f"{SCENE}_B4.tif"},
                       datetime="2000-10-30T04:40:00", collection="everest-landsat7")
cube = gx.open_cube([item], bbox=item.bbox, resolution=30, crs="EPSG:32645", chunks=256, indices=False)
# The part of the scene that the RGI outlines cover (24 x 20 km), kept in memory: it is small.
cube = cube.sel(x=slice(478000, 502000), y=slice(3108140, 3088490)).persist()
outlines = gpd.read_file(DATA / "15_rgi60_glacier_outlines.gpkg")
print(f"cube     {dict(cube.sizes)} at 30 m, variables {list(cube.data_vars)}")
print(f"RGI 6.0  {len(outlines)} glacier outlines")

# West half for training (cut on a multiple of 64 px, the chip size), east half for testing.
mid = cube.sizes["x"] // 2 // 64 * 64
west, east = cube.isel(x=slice(0, mid)), cube.isel(x=slice(mid, None))
quicklook(cube, OUT / "scene.png", outlines=outlines)

# %% [markdown]
# ## Baseline: a brightness threshold
#
# Snow and clean ice are bright in all visible bands. The threshold with the best glacier
# IoU on the west half is applied to the east half. Debris-covered tongues are as dark as
# the surrounding moraines, so this baseline misses them.

# %%
def brightness(c):
    return (c["B04"] + c["B03"] + c["B02"]) / 3


labels = rasterize_labels(outlines, west["B04"]).values.astype(bool)
b = brightness(west).values
iou = {t: ((b >= t) & labels).sum() / ((b >= t) | labels).sum() for t in np.arange(0.2, 0.95, 0.01)}
threshold = float(max(iou, key=iou.get))
bright = (brightness(east) >= threshold).astype("float32").rio.write_crs(east.rio.crs)
baseline = gx.evaluate(bright, outlines)

# %% [markdown]
# ## A tiny learned model
#
# Normalisation (mean and std per band) comes from the training half; `fit` cuts 64 x 64 px
# chips (1.9 km) in spatial blocks, 70 % for training and 30 % for validation, and keeps the
# best epoch. `cube.glacier.predict` then maps the east half in overlapping 128 px windows.

# %%
bands = ("B04", "B03", "B02", "B08")
norm = {band: (float(west[band].mean()), float(west[band].std())) for band in bands}
torch.manual_seed(0)
model = gx.models.create("deeplabv3plus", bands=bands, preset="tiny", normalization=norm)
checkpoint = OUT / "deeplabv3plus-everest.pt"
history = fit(west, outlines, model, out=checkpoint, epochs=EPOCHS, chip=64, batch_size=8, lr=3e-3, seed=0,
              cache=True, overwrite=True, progress=False)
print(f"trained  {len(history)} epochs, best validation mIoU {max(h['miou'] or 0 for h in history):.3f}")
prob = east.glacier.predict(gx.models.load(checkpoint), window=128, overlap=32).compute()
learned = gx.evaluate(prob, outlines)
prob.glacier.to_zarr(OUT / "east_probability.zarr", mode="w")
quicklook(east, OUT / "east_outlines.png", outlines=prob.glacier.outlines(min_area_km2=0.1))

# %% [markdown]
# ## Scores on the east half, against RGI 6.0
#
# RGI outlines were drawn from other images than this one, so even a perfect map of this
# scene would not score 1: the scores compare methods, they are not absolute accuracies.

# %%
rows = [(f"brightness >= {threshold:.2f}", baseline), ("deeplabv3plus tiny", learned)]
table = ["| method | OA | glacier F1 | glacier IoU | mIoU | boundary mean (m) |", "|---|---|---|---|---|---|"]
table += [f"| {name} | {s['oa']:.3f} | {s['f1']['glacier']:.3f} | {s['iou']['glacier']:.3f} | {s['miou']:.3f} | "
          f"{s['boundary_mean_m'] or float('nan'):.0f} |" for name, s in rows]
(OUT / "table.md").write_text("\n".join(table) + "\n")
print("\n".join(table))
print(f"maps     {OUT / 'scene.png'}, {OUT / 'east_outlines.png'}")
print(f"done in {time.perf_counter() - t0:.1f} s")
