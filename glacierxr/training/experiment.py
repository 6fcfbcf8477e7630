"""The paper's comparisons as a grid of runs: models x band combinations x seeds, as Markdown tables.

A TOML config names a training region, a test region and one or more tables; each table is a
grid of models and band groups (Peng et al. 2023, Fig. 4: A = Sentinel-1 VV/VH, B = Sentinel-2
B2 B3 B4 B8 B11, C = NDVI NDSI NDWI, D = elevation; a combination is written as letters, e.g.
``"ABD"``). Every run trains on the training region (:func:`~glacierxr.training.fit`), predicts
the test region with ``cube.glacier.predict`` and scores it with :func:`glacierxr.evaluate`.
``band-ratio`` is scored without training on its own fixed bands.

Each finished run is appended to ``results.jsonl`` in the output folder, so an interrupted
experiment resumes where it stopped; ``tables.md`` is rewritten after every run.

Example config::

    preset = "tiny"        # model size
    recipe = "cpu"         # glacierxr.training.recipe; epochs, chip, lr, batch_size,
                           # val_fraction, time_limit override its values
    seeds = [0]
    window = 256           # prediction window and overlap (px); older configs say tile = 128
    overlap = 64

    [train]
    synthetic = { seed = 1, size = 384 }     # or: stac, bbox, datetime, outlines
    [[test]]                                 # one or more test regions; scores are their mean
    synthetic = { seed = 2, size = 384, center = [77.5, 35.5] }

    [[table]]
    title = "Models (Table 2)"
    models = ["lgt-lgcb", "unet", "deeplabv3plus", "attention-deeplabv3plus", "swin", "band-ratio"]
    bands = ["ABCD"]
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
import tomllib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from glacierxr.errors import InvalidArgumentError

__all__ = ["BAND_GROUPS", "bands_of", "run_experiment", "markdown_tables", "Prepared"]

#: The paper's band groups (Fig. 4), as cube variable names.
BAND_GROUPS: dict[str, tuple[str, ...]] = {
    "A": ("VV", "VH"),
    "B": ("B02", "B03", "B04", "B08", "B11"),
    "C": ("NDVI", "NDSI", "NDWI"),
    "D": ("elevation",),
}
_RATIO_BANDS = ("B03", "B04", "B08", "B11")
# training values left out come from the recipe (glacierxr.training.recipe)
_DEFAULTS = {"preset": "tiny", "recipe": "cpu", "seeds": [0], "window": 256, "overlap": 64, "chunks": 512}
_RECIPE_KEYS = ("epochs", "chip", "lr", "batch_size", "val_fraction", "time_limit")


def bands_of(combination: str, groups: Mapping[str, Sequence[str]] = BAND_GROUPS) -> tuple[str, ...]:
    """The cube variables of a band combination such as ``"ABD"``.

    Raises
    ------
    InvalidArgumentError
        For a letter that is not a group.
    """
    unknown = [c for c in combination if c not in groups]
    if not combination or unknown:
        raise InvalidArgumentError(
            f"band combination {combination!r}: unknown group(s) {unknown or '(empty)'}; groups are "
            + ", ".join(f"{k} = {' '.join(v)}" for k, v in groups.items())
        )
    return tuple(b for c in combination for b in groups[c])


@dataclass
class Prepared:
    """A region ready for the experiment: its cube, its reference outlines, and optional masks."""

    cube: xr.Dataset
    outlines: Any
    debris: xr.DataArray | None = None
    """Debris-covered glacier pixels on the cube grid (synthetic regions), for debris IoU."""


@contextlib.contextmanager
def _region(spec: Mapping[str, Any], work: Path, chunks: int) -> Iterator[Prepared]:
    import glacierxr as gx

    if "synthetic" in spec:
        from glacierxr.stac_server import serve
        from glacierxr.synthetic import make_region

        s = spec["synthetic"]
        seed, size = int(s.get("seed", 0)), int(s.get("size", 384))
        center = tuple(float(v) for v in s.get("center", (86.92, 27.98)))
        region = make_region(work / f"synthetic-{seed}-{size}-{center[0]:g}_{center[1]:g}", seed=seed,
                             shape=(size, size), center=center)
        with serve(region.stac_dir) as url:
            items = gx.search(url, bbox=region.bbox, datetime=region.datetime,
                              sensors=("sentinel-2", "sentinel-1", "dem"))
            cube = gx.open_cube(items, bbox=region.bbox, chunks=chunks).persist()
        yield Prepared(cube, region.truth_path, _on_grid(region.arrays["debris"], region.transform, cube))
        return
    missing = [k for k in ("stac", "bbox", "datetime", "outlines") if k not in spec]
    if missing:
        raise InvalidArgumentError(f"a region needs 'synthetic = {{seed, size}}' or stac, bbox, datetime and "
                                   f"outlines; missing {missing}.")
    items = gx.search(spec["stac"], bbox=spec["bbox"], datetime=spec["datetime"],
                      sensors=("sentinel-2", "sentinel-1", "dem"), max_cloud=spec.get("max_cloud"))
    cube = gx.open_cube(items, bbox=spec["bbox"], resolution=float(spec.get("resolution", 10.0)), chunks=chunks)
    yield Prepared(cube, spec["outlines"])


def _on_grid(mask: np.ndarray, transform, cube: xr.Dataset) -> xr.DataArray:
    """A mask of the synthetic raster placed on the cube's grid (nearest pixel centre; NaN outside)."""
    h, w = mask.shape
    ys = transform.f + transform.e * (np.arange(h) + 0.5)
    xs = transform.c + transform.a * (np.arange(w) + 0.5)
    da = xr.DataArray(mask.astype(np.float32), dims=("y", "x"), coords={"y": ys, "x": xs})
    tol = abs(transform.a) / 2
    return da.reindex(y=cube["y"].values, x=cube["x"].values, method="nearest", tolerance=tol)


def _score(prob: xr.DataArray, test: Prepared) -> dict[str, Any]:
    import glacierxr as gx

    m = gx.evaluate(prob, test.outlines, objects=False)
    row = {"oa": m["oa"], "f1": m["f1"]["glacier"], "mean_f1": m["mean_f1"], "miou": m["miou"],
           "iou_glacier": m["iou"]["glacier"], "iou_debris": None}
    if test.debris is not None:
        debris = test.debris.values == 1
        pred = prob.values >= 0.5
        # every debris pixel is glacier in the reference, so IoU restricted to them is their recall
        row["iou_debris"] = float(pred[debris].mean()) if debris.any() else None
    return row


def _one_run(model_name: str, combo: str, seed: int, cfg: Mapping[str, Any], train: Prepared,
             tests: Sequence[Prepared], work: Path, progress: bool) -> dict[str, Any]:
    import torch

    import glacierxr.models as gm
    from glacierxr.training.fit import fit

    record: dict[str, Any] = {"model": model_name, "bands": combo, "seed": seed}
    if model_name == "band-ratio":
        model = gm.create("band-ratio", bands=_RATIO_BANDS)
        record.update(bands="B (ratio)", params_m=0.0, s_per_epoch=None, epochs=0)
    else:
        torch.manual_seed(seed)
        model = gm.create(model_name, bands=bands_of(combo, cfg.get("groups", BAND_GROUPS)), preset=cfg["preset"])
        out = work / "runs" / f"{model_name}-{combo}-{seed}.pt"
        hist = fit(train.cube, train.outlines, model, out=out, recipe=cfg["recipe"], seed=seed, cache=True,
                   device=cfg.get("device", "auto"), overwrite=True, progress=progress,
                   **{k: cfg.get(k) for k in _RECIPE_KEYS})
        model = gm.load(out)
        record.update(train_s=sum(h["seconds"] for h in hist), params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                      s_per_epoch=statistics.fmean(h["seconds"] for h in hist), epochs=len(hist),
                      val_miou=max(h["miou"] or 0.0 for h in hist))
    t = time.perf_counter()
    scores = []
    for region in tests:
        prob = region.cube.glacier.predict(model, window=int(cfg["window"]), overlap=int(cfg["overlap"])).compute()
        scores.append(_score(prob, region))
    record["predict_s"] = time.perf_counter() - t
    # several test regions: the mean of each metric over them, and the per-region values
    for k in scores[0]:
        vals = [sc[k] for sc in scores if sc[k] is not None]
        record[k] = statistics.fmean(vals) if vals else None
    if len(scores) > 1:
        record["per_region"] = scores
    return record


def run_experiment(config: str | os.PathLike | Mapping[str, Any], out: str | os.PathLike, *,
                   progress: bool = True) -> str:
    """Run every table of an experiment config and write ``results.jsonl`` and ``tables.md`` to ``out``.

    Parameters
    ----------
    config
        A TOML file or the equivalent mapping (see the module docstring).
    out
        Output folder; runs already in its ``results.jsonl`` are not run again.
    progress
        Print one line per run (and the training progress) to stderr.

    Returns
    -------
    str
        The Markdown tables.
    """
    import sys

    if not isinstance(config, Mapping):
        with open(config, "rb") as f:
            config = tomllib.load(f)
    cfg = {**_DEFAULTS, **_renamed_keys(config, "the experiment config")}
    for key in ("train", "test", "table"):
        if key not in cfg:
            raise InvalidArgumentError(f"the experiment config has no [{key}] section; see "
                                       "glacierxr.training.experiment for an example.")
    tables = cfg["table"] if isinstance(cfg["table"], list) else [cfg["table"]]
    tables = [_renamed_keys(t, f"[[table]] {t.get('title', '')!r}") for t in tables]

    for t in tables:
        for combo in t.get("bands", ["ABCD"]):
            bands_of(combo, cfg.get("groups", BAND_GROUPS))  # fail before hours of training
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    done = [json.loads(line) for line in results_path.read_text().splitlines()] if results_path.exists() else []
    key = lambda r: (r["model"], r["combo"], r["seed"], r["epochs_asked"], r["preset"])  # noqa: E731
    finished = {key(r) for r in done}
    test_specs = cfg["test"] if isinstance(cfg["test"], list) else [cfg["test"]]
    with contextlib.ExitStack() as stack:
        train = stack.enter_context(_region(cfg["train"], out / "regions", int(cfg["chunks"])))
        tests = [stack.enter_context(_region(t, out / "regions", int(cfg["chunks"]))) for t in test_specs]
        for t in tables:
            tcfg = _table_config(cfg, t)
            for model_name in t["models"]:
                for combo in t.get("bands", ["ABCD"]):
                    for seed in tcfg["seeds"]:
                        asked = _asked(model_name, tcfg)
                        if (model_name, combo, seed, asked, tcfg["preset"]) in finished:
                            continue
                        if progress:
                            sys.stderr.write(f"run {model_name} bands {combo} seed {seed}\n")
                        rec = _one_run(model_name, combo, int(seed), tcfg, train, tests, out, progress)
                        rec.update(combo=combo, epochs_asked=asked, preset=tcfg["preset"])
                        done.append(rec)
                        finished.add(key(rec))
                        with results_path.open("a") as f:
                            f.write(json.dumps(rec) + "\n")
                        (out / "tables.md").write_text(markdown_tables(tables, done, cfg))
    text = markdown_tables(tables, done, cfg)
    (out / "tables.md").write_text(text)
    return text


#: Keys a ``[[table]]`` may set for its own runs, overriding the top level.
_TABLE_KEYS = ("preset", "recipe", *_RECIPE_KEYS, "seeds", "window", "overlap")


def _asked(model_name: str, cfg: Mapping[str, Any]) -> str | int:
    """What a run was asked to train for (its key in ``results.jsonl``): the recipe and epochs."""
    if model_name == "band-ratio":
        return 0
    return f"{cfg['recipe']}:{cfg.get('epochs') or 'default'}"


def _renamed_keys(config: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``config`` with the deprecated key ``tile`` read as ``window`` (with a FutureWarning)."""
    config = dict(config)
    if "tile" in config:
        if "window" in config:
            raise InvalidArgumentError(f"{where} sets both window and its deprecated alias tile; keep only window.")
        warnings.warn(f"{where}: tile = ... is deprecated, use window = ...", FutureWarning, stacklevel=3)
        config["window"] = config.pop("tile")
    return config


def _table_config(cfg: Mapping[str, Any], table: Mapping[str, Any]) -> dict[str, Any]:
    return {**cfg, **{k: table[k] for k in _TABLE_KEYS if k in table}}



def _fmt(values: list[float | None], digits: int = 3) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "–"
    if len(set(vals)) == 1:  # one run, or a deterministic method (band-ratio, parameter counts)
        return f"{vals[0]:.{digits}f}"
    return f"{statistics.fmean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def markdown_tables(tables: Sequence[Mapping[str, Any]], results: Sequence[Mapping[str, Any]],
                    config: Mapping[str, Any] | None = None) -> str:
    """Markdown tables in the paper's format from run records (mean ± std over seeds).

    ``config`` is the experiment's top-level settings (epochs, preset, ...) that tables inherit.
    """
    cols = ("model", "bands", "params (M)", "s / epoch", "OA", "F1", "mIoU", "glacier IoU", "debris IoU")
    parts = []
    for t in tables:
        lines = [f"### {t.get('title', 'Experiment')}", "", "| " + " | ".join(cols) + " |",
                 "|" + "---|" * len(cols)]
        tcfg = _table_config({**_DEFAULTS, **(config or {})}, t)
        for model_name in t["models"]:
            for combo in t.get("bands", ["ABCD"]):
                asked = _asked(model_name, tcfg)
                runs = [r for r in results if r["model"] == model_name and r["combo"] == combo
                        and r.get("epochs_asked", asked) == asked]
                if not runs:
                    continue
                lines.append("| " + " | ".join([
                    model_name, runs[0]["bands"], _fmt([r["params_m"] for r in runs], 2),
                    _fmt([r["s_per_epoch"] for r in runs], 1), _fmt([r["oa"] for r in runs]),
                    _fmt([r["f1"] for r in runs]), _fmt([r["miou"] for r in runs]),
                    _fmt([r["iou_glacier"] for r in runs]), _fmt([r["iou_debris"] for r in runs]),
                ]) + " |")
        from glacierxr.training.recipe import recipe

        r = recipe(tcfg["recipe"], **{k: tcfg.get(k) for k in _RECIPE_KEYS})
        lines += ["", f"Preset {tcfg['preset']}, recipe {r.name} (at most {r.epochs} epochs of {r.per_epoch or 'all'} "
                  f"chips of {r.chip} px, lr {r.lr:g}, {r.sampling} sampling"
                  f"{f', {r.time_limit / 60:g} min limit' if r.time_limit else ''}), seeds {list(tcfg['seeds'])}; "
                  "OA, F1 (glacier), mIoU and IoUs on the test region(s), averaged over them; debris IoU is over "
                  "the debris-covered glacier pixels (= their recall)."]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
