# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     name: python3
#     display_name: Python 3
# ---

# %% [markdown]
# # 3. A regional inventory on a Dask cluster, with resume
#
# `gx.run_inventory` is the whole production chain of example 1 in one call (the Python side
# of `glacierxr inventory`): search, cube, predict, Zarr, outlines, inventory, quicklook and a
# manifest, in one output folder. It runs on
#
# * Dask's threaded scheduler (the default),
# * a `LocalCluster` of worker processes on this machine (`workers=N`), or
# * any running Dask cluster (`scheduler="tcp://host:8786"`): an HPC batch system through
#   dask-jobqueue, Kubernetes through dask-kubernetes, Coiled, ...
#
# The probability raster, the only expensive output, is written chunk by chunk with a
# done-record per chunk. A run that is killed (time limit on the cluster, `kill -9`, a lost
# node) is finished by calling it again with `resume=True`: only the missing chunks run.
#
# Outputs go to `$GLACIERXR_EXAMPLES_OUT/03_regional_inventory_cluster`.

# %%
import atexit
import contextlib
import json
import os
import time
from pathlib import Path

from distributed import LocalCluster

import glacierxr as gx
from glacierxr.errors import StoreExistsError
from glacierxr.stac_server import serve
from glacierxr.synthetic import make_region

OUT = Path(os.environ.get("GLACIERXR_EXAMPLES_OUT", "examples-output")) / "03_regional_inventory_cluster"
RUN = OUT / "inventory"

# %% [markdown]
# **Why every cell below starts with `if __name__ == "__main__":`** — Dask starts its worker
# processes the way Python's `multiprocessing` "spawn" method does: each new process first
# imports the script that started it. The guard keeps the workers from running the example
# again. In a notebook the guard is always true and changes nothing; in your own scripts,
# put the code that starts a cluster under such a guard too (or in a `main()` called from it).

# %% [markdown]
# ## The region and its STAC API
#
# A 768 x 768 px (59 km²) synthetic region, served on localhost. The server stays up for
# the whole example because every run searches it again. The run cuts it into production tiles
# of 2.5 km (a real range uses the default 100 km): each tile is one Dask task that builds and
# computes its own small graph, and glaciers cut by tile borders are merged into one polygon.

# %%
if __name__ == "__main__":
    t0 = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    region = make_region(OUT / "region", seed=2, shape=(768, 768))
    # `with serve(...) as url:` would stop the server at the end of this cell; an ExitStack keeps
    # it up until `servers.close()` in the last cell (or the end of the program, should one fail).
    servers = contextlib.ExitStack()
    atexit.register(servers.close)
    url = servers.enter_context(serve(region.stac_dir))
    print("STAC API ", url)

    # The run's parameters. A resumed run must use the same ones (the folder's run.json records
    # them); glacierxr refuses to mix two runs in one folder.
    params = dict(bbox=region.bbox, datetime=region.datetime, out=RUN, model="band-ratio",
                  tile_km=2.5, margin_km=0.5, chunk=256, window=256, overlap=32, min_area_km2=0.05)


# %% [markdown]
# ## First run: a LocalCluster of 2 worker processes
#
# `workers=2` starts a LocalCluster for the run and stops it at the end. The progress bar
# counts tiles, km² and km²/s. `overwrite=True` replaces what an earlier run of this example left.

# %%
if __name__ == "__main__":
    t = time.perf_counter()
    manifest = gx.run_inventory(url, **params, workers=2, overwrite=True)
    first_s = time.perf_counter() - t
    print(f"first run: {manifest['glaciers']} glaciers, {manifest['glacier_area_km2']:.2f} km², "
          f"{manifest['km2_processed']:.1f} km² processed in {first_s:.1f} s")
    print("outputs  ", sorted(p.name for p in RUN.iterdir() if not p.name.startswith(".")))

# %% [markdown]
# ## The folder is protected
#
# Calling again without `resume` or `overwrite` is refused before anything is touched.

# %%
if __name__ == "__main__":
    try:
        gx.run_inventory(url, **params, quiet=True)
    except StoreExistsError as err:
        print("refused  ", err)

# %% [markdown]
# ## Resume, on a cluster given by its address
#
# Here we start a LocalCluster ourselves and pass its scheduler address: the same call works
# with the address of any Dask cluster. Every tile in `RUN` is already done (its ledger entry
# `tiles/<id>/done.json` exists), so no tile runs again; the merged outputs (outlines,
# inventory, quicklook, manifest) are rewritten and are identical. After a crash, the same
# call would run the unfinished tiles only.

# %%
if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
        t = time.perf_counter()
        again = gx.run_inventory(url, **params, scheduler=cluster.scheduler_address, resume=True)
        resume_s = time.perf_counter() - t
    print(f"resumed run: {again['glaciers']} glaciers in {resume_s:.1f} s "
          f"(tiles {again['timings_s']['tiles_s']:.2f} s, first run {manifest['timings_s']['tiles_s']:.2f} s)")
    assert again["glaciers"] == manifest["glaciers"]
    servers.close()  # stop the STAC API

# %% [markdown]
# ## The same run elsewhere (not executed here)
#
# The command line:
#
# ```bash
# glacierxr inventory --stac earth-search --bbox 86.80 27.90 86.95 28.02 \
#     --datetime 2023-07-15/2023-09-30 --max-cloud 20 --model band-ratio --out khumbu --workers 4
# glacierxr inventory ... --resume          # after a crash: only the unfinished tiles run
# ```
#
# An existing cluster, by its scheduler address:
#
# ```python
# gx.run_inventory("earth-search", bbox=bbox, datetime=window, out="khumbu", max_cloud=20,
#                  scheduler="tcp://scheduler.example.org:8786")
# ```
#
# An HPC batch system (SLURM, PBS, SGE, ...) with dask-jobqueue: each job is one worker;
# a job killed at its wall-time limit is simply replaced, and `resume=True` finishes a run
# that the whole allocation did not.
#
# ```python
# from dask_jobqueue import SLURMCluster
#
# cluster = SLURMCluster(cores=8, processes=4, memory="32GB", walltime="02:00:00")
# cluster.scale(jobs=10)                       # 40 worker processes
# gx.run_inventory("earth-search", bbox=bbox, datetime=window, out="/scratch/karakoram",
#                  scheduler=cluster.scheduler_address, resume=True)
# ```
#
# Kubernetes with dask-kubernetes (the workers need glacierxr installed in their image):
#
# ```python
# from dask_kubernetes.operator import KubeCluster
#
# cluster = KubeCluster(name="glaciers", image="ghcr.io/example/glacierxr:latest", n_workers=20)
# gx.run_inventory("planetary-computer", bbox=bbox, datetime=window, out="s3-mounted/alps",
#                  scheduler=cluster.scheduler_address)
# ```
#
# Whatever the size of the region, the scheduler sees one task per tile and at most
# `max_in_flight` of them at a time (twice the worker threads by default); `glacierxr plan`
# shows the tiles, zones and task counts of a region before anything is read.

# %%
if __name__ == "__main__":
    print("manifest ", json.dumps({k: manifest[k] for k in ("plan", "km2_processed", "glaciers")}))
    print(f"done in {time.perf_counter() - t0:.1f} s")
