# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     name: python3
#     display_name: Python 3
# ---

# %% [markdown]
# # 1. Quickstart: from a STAC search to a glacier inventory
#
# This walks through the whole chain on a small *synthetic* mountain region that glacierxr
# writes to disk, so it runs offline in well under a minute:
#
# 1. **search** a STAC API for Sentinel-2 L2A scenes and a DEM over a bounding box,
# 2. **open** them as one lazy datacube (an `xarray.Dataset` on a UTM grid, backed by Dask),
# 3. **predict** a glacier probability raster with the classic band-ratio method,
# 4. write it to **Zarr**, turn it into glacier **outlines**, and compute an RGI-style
#    **inventory** (area, elevations, slope, aspect, ...) from the DEM,
# 5. **score** the result against the true outlines and draw a **map**.
#
# The synthetic region is served by a real STAC API process on localhost, so the code below
# is exactly what you would run against Earth Search or Planetary Computer (see example 5).
#
# Outputs go to `$GLACIERXR_EXAMPLES_OUT/01_quickstart` (default `./examples-output/01_quickstart`).

# %%
import os
import time
from pathlib import Path

import geopandas as gpd
import xarray as xr

import glacierxr as gx
from glacierxr.quicklook import quicklook
from glacierxr.stac_server import serve
from glacierxr.synthetic import make_region

OUT = Path(os.environ.get("GLACIERXR_EXAMPLES_OUT", "examples-output")) / "01_quickstart"
OUT.mkdir(parents=True, exist_ok=True)
t0 = time.perf_counter()

# %% [markdown]
# ## A region to map
#
# `make_region` writes a seeded synthetic glaciated region near Everest: Sentinel-2 L2A
# reflectances (three late-summer dates, some cloudy), Sentinel-1 backscatter and a
# Copernicus-like DEM as Cloud-Optimised GeoTIFFs, their STAC items, and the true glacier
# outlines as a GeoPackage. 512 x 512 pixels at 10 m is about 26 km².

# %%
region = make_region(OUT / "region", seed=2, shape=(512, 512))
print("region   ", region.name, region.shape, "px at 10 m,", region.crs)
print("bbox     ", [round(v, 5) for v in region.bbox], "(west, south, east, north in degrees)")
print("dates    ", region.datetime)
print(f"glaciers  {region.arrays['glacier'].mean():.0%} of the region is glacier in the true mask")

# %% [markdown]
# ## Search, cube, predict
#
# `serve` starts a local STAC API over the region's folder. `gx.search` runs one STAC search
# per sensor; `gx.open_cube` puts every sensor on one grid, masks clouds with the Sentinel-2
# scene classification and takes the median over the dates. Nothing is read yet: the cube is
# lazy until something needs its values.
#
# The band-ratio model is the standard non-learned method (a red/SWIR ratio with a
# green/SWIR snow index); it maps clean ice and snow well but misses debris-covered tongues.
# A trained checkpoint (`gx.models.load("model.pt")`, see example 2) is used the same way.

# %%
with serve(region.stac_dir) as url:  # a STAC API on 127.0.0.1, stopped at the end of the block
    items = gx.search(url, bbox=region.bbox, datetime=region.datetime, sensors=("sentinel-2", "dem"))
print("search   ", {sensor: len(found) for sensor, found in items.items()}, "items")
# The API is only needed for the search: the items point at the image files themselves (local
# COGs here, https:// or s3:// COGs on a cloud STAC API).

# %%
cube = gx.open_cube(items, bbox=region.bbox, resolution=10, chunks=256)
print("cube     ", dict(cube.sizes), "variables:", list(cube.data_vars))

model = gx.models.create("band-ratio", bands=["B03", "B04", "B08", "B11"])
prob = cube.glacier.predict(model)  # lazy DataArray "glacier_probability", 0..1
prob

# %% [markdown]
# Writing to Zarr computes the raster chunk by chunk. An interrupted write is finished by
# calling it again with the default `mode="w-"`; `mode="w"` replaces an earlier run. From here
# on we work from the stored raster, so nothing is computed twice.

# %%
store = prob.glacier.to_zarr(OUT / "probability.zarr", mode="w")
prob = xr.open_zarr(store, decode_coords="all")["glacier_probability"]
print("zarr     ", store)

# %% [markdown]
# ## Outlines and inventory
#
# `outlines` thresholds the probability at 0.5, polygonises it chunk by chunk and stitches
# glaciers across chunk borders; nunataks stay as holes and glaciers below 0.05 km² are
# dropped. `gx.inventory` adds the RGI 7 attributes from the DEM in the cube.

# %%
outlines = prob.glacier.outlines(threshold=0.5, min_area_km2=0.05)
inv = gx.inventory(outlines, cube["elevation"], date=region.datetime.split("/")[1], dem_source="COPDEM30",
                   probability=prob)
gx.write_inventory(inv, OUT / "inventory.gpkg", overwrite=True)  # GeoPackage; .parquet, .shp too
inv.drop(columns="geometry").to_csv(OUT / "inventory.csv", index=False)
print(f"inventory {len(inv)} glaciers, {inv['area_km2'].sum():.2f} km²")
print(inv[["glac_id", "area_km2", "zmin_m", "zmed_m", "zmax_m", "slope_deg", "aspect_sec"]].round(2).to_string(index=False))

# %% [markdown]
# ## Accuracy and a map
#
# `gx.evaluate` rasterises the reference outlines onto the prediction's grid and returns the
# paper's pixel metrics (overall accuracy, F1 and IoU per class, mean IoU) plus boundary
# distances in metres. The map is a true-colour composite with our outlines in yellow.

# %%
truth = gpd.read_file(region.truth_path)
scores = gx.evaluate(prob, truth)
print(f"accuracy  OA {scores['oa']:.3f}  glacier IoU {scores['iou']['glacier']:.3f}  mIoU {scores['miou']:.3f}  "
      f"glacier F1 {scores['f1']['glacier']:.3f}  boundary mean {scores['boundary_mean_m']:.1f} m")
quicklook(cube, OUT / "map.png", outlines=outlines)

# %% [markdown]
# If matplotlib is installed, a second figure shows the probability with the true outlines on
# top. True outlines with no probability inside them are mostly debris-covered tongues, which
# the band ratio cannot see (example 2 trains a model instead).

# %%
try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None
if plt is not None:
    fig, ax = plt.subplots(figsize=(6, 5))
    prob.plot.imshow(ax=ax, cmap="Blues", vmin=0, vmax=1, cbar_kwargs={"label": "glacier probability"})
    truth.to_crs(prob.rio.crs).boundary.plot(ax=ax, color="red", linewidth=0.6, label="true outline")
    ax.set_title("band-ratio probability (blue), true outlines (red)")
    ax.set_aspect("equal")
    fig.savefig(OUT / "probability.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

print("outputs  ", "\n          ".join(str(p) for p in sorted(OUT.iterdir()) if p.name != "region"))
print(f"done in {time.perf_counter() - t0:.1f} s")
