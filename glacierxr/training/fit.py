"""Train a model on a cube and outlines end to end: chips, the training loop, one output checkpoint."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import xarray as xr

from glacierxr.errors import InvalidArgumentError, StoreExistsError
from glacierxr.training.data import training_data
from glacierxr.training.loop import train

__all__ = ["fit", "run_dir"]


def run_dir(out: str | os.PathLike) -> Path:
    """Where :func:`fit` keeps the run of ``out``: ``model.pt`` -> ``model.pt.run/``.

    It holds ``best.pt``, ``last.pt`` + ``last.state.pt`` (for resuming) and ``chips/`` (the
    chip cache).
    """
    p = Path(out)
    return p.with_name(p.name + ".run")


def fit(
    cube: xr.Dataset,
    outlines: Any,
    model,
    *,
    out: str | os.PathLike,
    epochs: int,
    chip: int = 256,
    val_fraction: float = 0.3,
    seed: int = 0,
    batch_size: int = 4,
    lr: float = 1e-4,
    weight_decay: float = 1e-2,
    augment: bool = True,
    cache: bool = True,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train ``model`` on chips of ``cube`` labelled by ``outlines`` and write the best checkpoint.

    Parameters
    ----------
    cube
        The datacube (lazy is fine): :func:`glacierxr.open_cube`.
    outlines
        Glacier polygons (GeoDataFrame or a path), any CRS.
    model
        A new model (:func:`glacierxr.models.create`) or a loaded one to fine-tune.
    out
        The checkpoint to write: the epoch with the best validation mIoU (the last epoch when
        there is no validation set). The run's files live in :func:`run_dir` ``(out)``.
    epochs
        Epochs in total (a resumed run continues up to this number).
    chip, val_fraction, seed
        Chip side in pixels, validation share (spatial blocks) and the seed of the split and of
        the training loop.
    batch_size, lr, weight_decay, augment, device
        See :func:`glacierxr.training.train` (the paper's defaults).
    cache
        Compute the chips once into ``run_dir(out)/chips`` (Zarr) instead of from the cube in
        every epoch.
    resume
        Continue the interrupted run of ``out`` from its ``last.pt``.
    overwrite
        Replace an existing ``out`` and its run.
    progress
        Progress on stderr.

    Returns
    -------
    list of dict
        The per-epoch history (:func:`glacierxr.training.train`).
    """
    from glacierxr.models import load, save

    out = Path(out)
    run = run_dir(out)
    if resume and overwrite:
        raise InvalidArgumentError("Pass either resume or overwrite, not both.")
    if (out.exists() or run.exists()) and not (resume or overwrite):
        raise StoreExistsError(f"{out} (or its run folder {run}) exists; pass resume=True to continue "
                               "that run or overwrite=True to start again.")
    if resume and not (run / "last.pt").exists():
        raise InvalidArgumentError(f"nothing to resume: {run / 'last.pt'} does not exist; start without resume.")
    if overwrite:
        shutil.rmtree(run, ignore_errors=True)
        out.unlink(missing_ok=True)
    train_ds, val_ds = training_data(cube, outlines, model.bands, model.normalization, chip=chip,
                                     val_fraction=val_fraction, seed=seed,
                                     cache=run / "chips" if cache else None, progress=progress)
    history = train(model, train_ds, val_ds, epochs=epochs, batch_size=batch_size, lr=lr,
                    weight_decay=weight_decay, seed=seed, augment=augment, device=device, checkpoint_dir=run,
                    resume=run / "last.pt" if resume else None, progress=progress)
    best = load(run / "best.pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    save(best, out, provenance={**best.provenance, "chips": {"chip": chip, "train": len(train_ds),
                                                              "val": len(val_ds)}})
    return history
