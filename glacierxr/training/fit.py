"""Train a model on a cube and outlines end to end: a recipe, the training raster, chips, the
training loop, one output checkpoint."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import xarray as xr

from glacierxr.errors import InvalidArgumentError, StoreExistsError, TrainingFailedWarning
from glacierxr.models.inputs import inputs_of
from glacierxr.training.loop import train
from glacierxr.training.recipe import Recipe
from glacierxr.training.recipe import recipe as resolve_recipe
from glacierxr.training.sampling import GridChips, RandomChips, mosaic, split_blocks, training_raster

__all__ = ["fit", "run_dir", "check_run", "FAILED_F1"]

#: A best validation glacier F1 below this means the model maps (almost) nothing.
FAILED_F1 = 0.05


def run_dir(out: str | os.PathLike) -> Path:
    """Where :func:`fit` keeps the run of ``out``: ``model.pt`` -> ``model.pt.run/``.

    It holds ``best.pt``, ``last.pt`` + ``last.state.pt`` (for resuming) and ``chips/`` (the
    training raster).
    """
    p = Path(out)
    return p.with_name(p.name + ".run")


def check_run(out: str | os.PathLike, *, resume: bool, overwrite: bool) -> None:
    """Refuse, before any work, a run that would replace ``out`` unasked or resume nothing."""
    out, run = Path(out), run_dir(out)
    if resume and overwrite:
        raise InvalidArgumentError("Pass either resume or overwrite, not both.")
    if (out.exists() or run.exists()) and not (resume or overwrite):
        raise StoreExistsError(f"{out} (or its run folder {run}) exists; pass resume=True to continue "
                               "that run or overwrite=True to start again.")
    if resume and not (run / "last.pt").exists():
        raise InvalidArgumentError(f"nothing to resume: {run / 'last.pt'} does not exist; start without resume.")


def fit(
    cube: xr.Dataset,
    outlines: Any,
    model,
    *,
    out: str | os.PathLike,
    recipe: str | Recipe = "cpu",
    epochs: int | None = None,
    chip: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    val_fraction: float | None = None,
    time_limit: float | None = None,
    normalization: str | None = None,
    seed: int = 0,
    augment: bool = True,
    cache: bool = True,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    provenance: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` on ``cube`` labelled by ``outlines`` with a named recipe; write the best checkpoint.

    Parameters
    ----------
    cube
        The datacube (lazy is fine): :func:`glacierxr.open_cube`. Its bands are computed once
        (:func:`~glacierxr.training.sampling.training_raster`). A list of cubes trains on several
        regions at once (:func:`~glacierxr.training.sampling.mosaic`).
    outlines
        Glacier polygons (GeoDataFrame or a path), any CRS; a list of them for a list of cubes.
    model
        A new model (:func:`glacierxr.models.create`) or a loaded one to fine-tune.
    out
        The checkpoint to write: the epoch with the best validation mIoU (the last epoch when
        there is no validation set). The run's files live in :func:`run_dir` ``(out)``.
    recipe
        ``"cpu"`` (default: from scratch on a CPU in minutes), ``"paper"`` (Peng et al. 2023) or
        ``"finetune"``; see :mod:`glacierxr.training.recipe`.
    epochs, chip, batch_size, lr, weight_decay, val_fraction, time_limit
        Override the recipe's values (``None``: the recipe's).
    normalization
        ``"chips"``: set the model's per-band (mean, std) from the training blocks' pixels;
        ``"model"``: keep the model's. ``None``: ``"chips"`` for a model never trained,
        ``"model"`` for a trained one (its weights expect its normalisation).
    seed
        Seeds the split, the chips drawn and the training loop.
    augment, device
        See :func:`glacierxr.training.train`.
    cache
        Compute the training raster into ``run_dir(out)/chips`` (memory-mapped, reused on resume)
        instead of into memory.
    resume
        Continue the interrupted run of ``out`` from its ``last.pt``.
    overwrite
        Replace an existing ``out`` and its run.
    progress
        Progress on stderr.
    provenance
        Extra facts to record in the checkpoint (e.g. the training data).

    Returns
    -------
    list of dict
        The per-epoch history (:func:`glacierxr.training.train`). When the best validation glacier
        F1 stays below :data:`FAILED_F1`, a :class:`~glacierxr.errors.TrainingFailedWarning`
        says what to change.
    """
    from glacierxr.models import load, save

    r = resolve_recipe(recipe, epochs=epochs, chip=chip, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                       val_fraction=val_fraction, time_limit=time_limit)
    if normalization not in (None, "chips", "model"):
        raise InvalidArgumentError(f"normalization={normalization!r}; use 'chips', 'model' or None.")
    out = Path(out)
    run = run_dir(out)
    check_run(out, resume=resume, overwrite=overwrite)
    if overwrite:
        shutil.rmtree(run, ignore_errors=True)
        out.unlink(missing_ok=True)
    cubes = list(cube) if isinstance(cube, (list, tuple)) else [cube]
    labels = list(outlines) if isinstance(cube, (list, tuple)) else [outlines]
    if len(cubes) != len(labels) or not cubes:
        raise InvalidArgumentError(f"{len(cubes)} cubes and {len(labels)} outlines: pass one outlines per cube.")
    rasters = [training_raster(c, o, model.bands, cache=run / "chips" / (str(i) if len(cubes) > 1 else "")
                               if cache else None, progress=progress) for i, (c, o) in enumerate(zip(cubes, labels, strict=True))]
    first = max(256, r.chip)  # mosaic padding and the first block size agree, so no block spans two regions
    raster = rasters[0] if len(rasters) == 1 else mosaic(rasters, multiple=first)
    # blocks of 256 px, smaller on a small area (at least 12 blocks, so a validation share exists
    # and little of the area falls outside the block grid), never smaller than a chip
    block, train_o, val_o = split_blocks(raster.shape, first, val_fraction=r.val_fraction, seed=seed,
                                         smallest=r.chip, min_blocks=12)
    trained = bool(getattr(model, "provenance", {}).get("history"))
    if (normalization or ("model" if trained else "chips")) == "chips" and not resume:
        model.normalization = raster.statistics(train_o, block)
    elif resume:
        model.normalization = load(run / "last.pt").normalization
    if r.per_epoch is None:
        train_ds = GridChips(raster, train_o, block, r.chip, model.normalization)
    else:
        train_ds = RandomChips(raster, train_o, block, r.chip, model.normalization, per_epoch=r.per_epoch,
                               sampling=r.sampling, seed=seed)
    val_ds = GridChips(raster, val_o, block, max(r.chip, min(block, 256)), model.normalization)
    model.inputs = inputs_of(cubes[0], model.bands)
    prov = {**(provenance or {}), "recipe": r.to_dict(),
            "chips": {"chip": r.chip, "block": block, "train_blocks": len(train_o), "val_blocks": len(val_o),
                      "per_epoch": len(train_ds), "sampling": r.sampling if r.per_epoch else "grid"}}
    history = train(model, train_ds, val_ds, epochs=r.epochs, batch_size=r.batch_size, lr=r.lr,
                    weight_decay=r.weight_decay, seed=seed, augment=augment, device=device, checkpoint_dir=run,
                    resume=run / "last.pt" if resume else None, progress=progress, warmup=r.warmup,
                    patience=r.patience, time_limit=r.time_limit, provenance=prov)
    best = load(run / "best.pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    save(best, out, provenance=best.provenance)
    f1 = max((h["f1_glacier"] or 0.0 for h in history), default=0.0)
    if val_o and f1 < FAILED_F1:
        warnings.warn(TrainingFailedWarning(
            f"the model maps (almost) no glacier: best validation glacier F1 {f1:.3f} after {len(history)} epochs. "
            f"Train longer (epochs), raise the learning rate (the 'cpu' recipe uses {resolve_recipe('cpu').lr:g}), "
            "use smaller chips, or check that the outlines cover glaciers visible in the imagery."), stacklevel=2)
    return history
