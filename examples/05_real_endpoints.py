# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     name: python3
#     display_name: Python 3
# ---

# %% [markdown]
# # 5. The quickstart on real STAC APIs: Earth Search and Planetary Computer
#
# Example 1 ran against a local STAC API. Pointing the same code at a cloud catalogue only
# changes the first argument of `gx.search`: a provider preset (`"earth-search"`,
# `"planetary-computer"`) or the root URL of any STAC API. The images are then streamed from
# cloud storage as Cloud-Optimised GeoTIFFs: only the windows inside the bounding box are read.
#
# * **Earth Search** (Element 84, AWS): Sentinel-2 L2A (`sentinel-2-l2a`) and Copernicus DEM
#   GLO-30 (`cop-dem-glo-30`); no account needed.
# * **Planetary Computer** (Microsoft): the same collections; its asset URLs must be signed
#   with a short-lived token, which `gx.search` does when the optional signer is installed:
#   `pip install 'glacierxr[planetary-computer]'`.
#
# The region is the Khumbu Glacier and its neighbours (about 15 x 13 km), in the late-summer
# window when seasonal snow is at its minimum. Without network access this example prints a
# "no network" message and stops. With it, expect a few minutes and a few hundred MB read.
#
# Outputs go to `$GLACIERXR_EXAMPLES_OUT/05_real_endpoints/<provider>`.

# %%
import os
import time
from pathlib import Path

import xarray as xr

import glacierxr as gx
from glacierxr.errors import AssetReadError, OptionalDependencyError, StacConnectionError
from glacierxr.quicklook import quicklook

OUT = Path(os.environ.get("GLACIERXR_EXAMPLES_OUT", "examples-output")) / "05_real_endpoints"
BBOX = (86.80, 27.90, 86.95, 28.02)              # west, south, east, north (degrees)
WINDOW = gx.late_summer(2023, lat=BBOX[1])      # "2023-07-15/2023-09-30" in the northern hemisphere
MAX_CLOUD = 20                                  # percent, per scene


# %% [markdown]
# ## The quickstart, for one endpoint
#
# The same steps as example 1. There are no "true" outlines here; compare the result with
# RGI 7.0 (`gx.compare_inventories(inv, rgi)`) or your own mapping.

# %%
def map_glaciers(stac: str) -> None:
    t = time.perf_counter()
    items = gx.search(stac, bbox=BBOX, datetime=WINDOW, sensors=("sentinel-2", "dem"), max_cloud=MAX_CLOUD)
    print(f"{stac}: " + ", ".join(f"{k} {len(v)} items" for k, v in items.items()))
    out = OUT / stac
    out.mkdir(parents=True, exist_ok=True)
    cube = gx.open_cube(items, bbox=BBOX, resolution=10, chunks=1024)
    model = gx.models.create("band-ratio", bands=["B03", "B04", "B08", "B11"])
    prob = cube.glacier.predict(model)
    store = prob.glacier.to_zarr(out / "probability.zarr", mode="w")  # reads the images, chunk by chunk
    prob = xr.open_zarr(store, decode_coords="all")["glacier_probability"]
    outlines = prob.glacier.outlines(min_area_km2=0.05)
    inv = gx.inventory(outlines, cube["elevation"], date=WINDOW.split("/")[1], probability=prob)
    gx.write_inventory(inv, out / "inventory.gpkg", overwrite=True)
    quicklook(cube, out / "map.png", outlines=outlines)
    print(f"{stac}: {len(inv)} glaciers, {inv['area_km2'].sum():.1f} km² in {time.perf_counter() - t:.0f} s -> {out}")


# %% [markdown]
# ## Run it on both endpoints
#
# Every error glacierxr raises on purpose is a `GlacierxrError` whose message says what to
# change; here the two that an offline machine or a missing extra would meet are caught.

# %%
for stac in ("earth-search", "planetary-computer"):
    try:
        map_glaciers(stac)
    except StacConnectionError as err:
        print(f"no network: {stac} could not be reached, so this example stops here.\n  ({err})")
        break  # the other endpoint will not answer either
    except AssetReadError as err:
        print(f"{stac}: an image could not be read (network trouble?): {err}")
    except OptionalDependencyError as err:
        print(f"{stac}: {err}")
