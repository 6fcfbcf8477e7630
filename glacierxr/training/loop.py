"""The training loop: AdamW with a linear warm-up and a cosine decay, Dice + CE, D4 augmentation,
validation OA / F1 / mIoU every epoch, early stopping, a time limit, best and last checkpoints,
resume. The defaults are the paper's recipe (lr 1e-4, no warm-up, batch 4); the named recipes of
:mod:`glacierxr.training.recipe` set the rest.

Checkpoints in ``checkpoint_dir``: ``best.pt`` (highest validation mIoU) and ``last.pt``, written
with :func:`glacierxr.models.save` (provenance: seed, epochs, losses, metrics), plus
``last.state.pt`` holding the optimiser, schedule, generator states and history, so
``resume="…/last.pt"`` continues exactly where the run stopped. A checkpoint without that
side file resumes its weights only (fine-tuning).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from glacierxr.errors import CheckpointError, InvalidArgumentError
from glacierxr.evaluate import pixel_metrics
from glacierxr.predict import resolve_device
from glacierxr.training.augment import random_d4
from glacierxr.training.losses import IGNORE, dice_ce_loss

__all__ = ["train", "validate", "state_path"]


def state_path(checkpoint: str | Path) -> Path:
    """The training-state side file of a checkpoint (``last.pt`` -> ``last.state.pt``)."""
    p = Path(checkpoint)
    return p.with_name(p.stem + ".state.pt")


def _device(device: str) -> torch.device:
    return torch.device(resolve_device(device))


@torch.inference_mode()
def validate(model: torch.nn.Module, dataset, *, batch_size: int = 4, device: str = "cpu") -> dict[str, Any]:
    """Loss and pixel metrics (:func:`glacierxr.evaluate.pixel_metrics`) of ``model`` on ``dataset``."""
    dev = _device(device)
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    counts = torch.zeros(4, dtype=torch.int64)
    loss_sum, n = 0.0, 0
    for x, y in loader:
        x, y = x.to(dev), y.to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            logits = model(x)
        loss_sum += float(dice_ce_loss(logits.float(), y)) * x.shape[0]
        n += x.shape[0]
        pred = logits.argmax(1)
        valid = y != IGNORE
        counts += torch.bincount((2 * y + pred)[valid].cpu(), minlength=4)[:4]
    tn, fp, fn, tp = (int(v) for v in counts)
    return {"loss": loss_sum / max(n, 1), **pixel_metrics(tn, fp, fn, tp)}


def _score(record: dict[str, Any]) -> float:
    """What "best" means: validation mIoU, or minus the training loss without validation."""
    return record["miou"] if record.get("miou") is not None else -record["train_loss"]


class _Progress:
    """A rich progress bar over all training steps, showing the running loss and the last metrics.

    Without a terminal (a log file, a CI job) there is no bar, whose last frame would be cut at
    the console's width and show the previous epoch's metrics: only one whole line per epoch.
    """

    def __init__(self, enabled: bool, total: int, done: int):
        self.bar = None
        self.lines = False
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            console = Console(stderr=True)
            if not console.is_terminal:
                self.lines = True
                return
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
                                console=console)
            self.task = self.bar.add_task("train", total=total, completed=done, status="")
            self.bar.start()

    def step(self, epoch: int, epochs: int, loss: float, last: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=f"epoch {epoch + 1}/{epochs}",
                            status=f"loss {loss:.4f}{last}")

    def total(self, steps: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, total=steps)

    def epoch(self, record: dict[str, Any]) -> str:
        m = "" if record["miou"] is None else (f" | val loss {record['val_loss']:.4f} OA {record['oa']:.3f} "
                                              f"F1 {record['f1_glacier']:.3f} mIoU {record['miou']:.3f}")
        line = f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}{m}"
        if self.bar is not None:
            self.bar.console.print(line)
        elif self.lines:
            print(line, file=sys.stderr, flush=True)
        return m

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def train(model, train_ds, val_ds, *, epochs: int, batch_size: int = 4, lr: float = 1e-4,
          weight_decay: float = 1e-2, seed: int = 0, augment: bool = True, device: str = "auto",
          checkpoint_dir: str | Path | None = None, resume: str | Path | None = None,
          progress: bool = True, warmup: float = 0.0, patience: int | None = None,
          time_limit: float | None = None, provenance: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Train ``model`` on ``train_ds`` and validate on ``val_ds`` every epoch.

    Parameters
    ----------
    model
        A glacierxr model (:func:`glacierxr.models.create` or :func:`glacierxr.models.load`).
    train_ds, val_ds
        Datasets of ``(x (C, H, W) float32 normalised, y (H, W) int64)``, e.g.
        :class:`~glacierxr.training.sampling.RandomChips` (its ``set_epoch`` is called before
        each epoch). Labels :data:`~glacierxr.training.losses.IGNORE` count nowhere. ``val_ds``
        may be ``None`` or empty.
    epochs
        Total number of epochs at most (when resuming, the run continues up to this number).
    batch_size, lr, weight_decay
        The paper's defaults: 4, 1e-4 (AdamW) with a cosine decay to 0 over all steps, 1e-2.
    warmup
        Share of all steps with a linear warm-up of the learning rate from 0 (then the cosine).
    patience
        Stop when the validation mIoU has not improved for this many epochs (``None``: never).
    time_limit
        Seconds: after the first epoch, ``epochs`` is cut so that the run fits (the schedule is
        recomputed for the new total, so it still ends at 0). ``None``: no limit.
    provenance
        Extra JSON-serialisable facts written into every checkpoint (data, recipe, ...).
    seed
        Seeds the weights' update order: ``torch.manual_seed``, the DataLoader's shuffling
        generator and the augmentation generator (``num_workers=0``). Same seed, same data and
        same initial weights give the same history.
    augment
        Random D4 (rotations, flip, mirror) per training sample.
    device
        ``"auto"`` (CUDA when present, with bf16 autocast), ``"cpu"``, ``"cuda"``, ...
    checkpoint_dir
        Where to write ``best.pt`` and ``last.pt`` (and ``last.state.pt``); ``None``: none.
    resume
        A checkpoint to start from: ``last.pt`` of a previous run (full state restored when its
        ``.state.pt`` is beside it) or any checkpoint of the same architecture (weights only).
    progress
        Show a progress bar (running loss, last validation metrics) and one line per epoch on stderr.

    Returns
    -------
    list of dict
        One dict per epoch run: ``epoch`` (1-based), ``train_loss``, ``val_loss``, ``oa``,
        ``f1_glacier``, ``mean_f1``, ``miou``, ``iou_glacier``, ``lr`` (at the epoch's first step), ``seconds``;
        the last record also has ``stopped``: ``"epochs"``, ``"patience"`` or ``"time_limit"``.
    """
    from glacierxr.models import load, save

    if int(epochs) != epochs or epochs < 1:
        raise InvalidArgumentError(f"epochs={epochs!r} must be a positive integer.")
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size={batch_size!r} must be a positive integer.")
    if lr <= 0 or weight_decay < 0:
        raise InvalidArgumentError(f"lr={lr!r} must be > 0 and weight_decay={weight_decay!r} >= 0.")
    if len(train_ds) == 0:
        raise InvalidArgumentError("train_ds is empty; pass more chip windows (smaller chips or val_fraction).")
    dev = _device(device)
    torch.manual_seed(seed)
    loader_gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator().manual_seed(seed + 1)
    loader = torch.utils.data.DataLoader(train_ds, batch_size=batch_size, shuffle=True, num_workers=0,
                                         generator=loader_gen, drop_last=False)
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    if not 0 <= warmup < 1:
        raise InvalidArgumentError(f"warmup={warmup!r} must be a share of the steps in [0, 1).")
    epochs = int(epochs)
    total_steps = epochs * len(loader)

    # closed form, linear warm-up then cosine to 0 over all steps: resuming with a larger
    # `epochs`, or a time limit cutting it, re-stretches it
    def cosine(step: int) -> float:
        warm = int(warmup * total_steps)
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warm, total_steps - warm) / max(total_steps - warm, 1)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
    history: list[dict[str, Any]] = []
    start = 0
    best = -math.inf

    if resume is not None:
        loaded = load(resume, map_location="cpu")
        if loaded.arch != model.arch or list(loaded.bands) != list(model.bands):
            raise CheckpointError(
                f"resume={str(resume)!r} holds {loaded.arch!r} on bands {list(loaded.bands)}; the model is "
                f"{model.arch!r} on {list(model.bands)}. Resume with a checkpoint of the same model."
            )
        model.load_state_dict(loaded.state_dict())
        sp = state_path(resume)
        if sp.exists():
            state = torch.load(sp, map_location="cpu", weights_only=False)
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            for group, base in zip(opt.param_groups, sched.base_lrs, strict=True):  # the schedule for the new total
                group["lr"] = base * cosine(sched.last_epoch)
            loader_gen.set_state(state["loader_generator"])
            aug_gen.set_state(state["augment_generator"])
            torch.set_rng_state(state["torch_rng"])
            history = list(state["history"])
            start = int(state["epoch"])
            best = float(state["best"])
        if start >= epochs and progress:
            sys.stderr.write(f"checkpoint already has {start} epochs >= epochs={epochs}; nothing to do\n")

    out = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    bar = _Progress(progress, epochs * len(loader), start * len(loader))
    last = ""
    stale = 0 if not history else len(history) - 1 - max(range(len(history)), key=lambda i: _score(history[i]))
    stopped = "epochs"
    try:
        epoch = start
        while epoch < epochs:
            t0 = time.perf_counter()
            if hasattr(train_ds, "set_epoch"):
                train_ds.set_epoch(epoch)
            model.train()
            lr_start = opt.param_groups[0]["lr"]
            loss_sum, n = 0.0, 0
            for x, y in loader:
                if augment:
                    x, y = random_d4(x, y, aug_gen)
                x, y = x.to(dev), y.to(dev)
                opt.zero_grad(set_to_none=True)
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                    logits = model(x)
                loss = dice_ce_loss(logits.float(), y)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += float(loss.detach()) * x.shape[0]
                n += x.shape[0]
                bar.step(epoch, int(epochs), loss_sum / n, last)
            record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": loss_sum / n}
            if val_ds is not None and len(val_ds) > 0:
                m = validate(model, val_ds, batch_size=batch_size, device=str(dev))
                record.update(val_loss=m["loss"], oa=m["oa"], f1_glacier=m["f1"]["glacier"], mean_f1=m["mean_f1"],
                              miou=m["miou"], iou_glacier=m["iou"]["glacier"])
            else:
                record.update(val_loss=None, oa=None, f1_glacier=None, mean_f1=None, miou=None, iou_glacier=None)
            record["lr"] = lr_start
            record["seconds"] = time.perf_counter() - t0
            history.append(record)
            last = bar.epoch(record)
            score = _score(record)
            stale = 0 if score > best else stale + 1
            if time_limit is not None and epoch == start:
                fits = max(int(time_limit // max(record["seconds"], 1e-9)), 1)
                if start + fits < epochs:  # cut the budget, and the schedule with it
                    epochs, total_steps = start + fits, (start + fits) * len(loader)
                    bar.total(epochs * len(loader))
                    stopped = "time_limit"
            if patience is not None and stale >= patience and epoch + 1 < epochs:
                epochs, stopped = epoch + 1, "patience"
            if epoch + 1 >= epochs:
                record["stopped"] = stopped
            if out is not None:
                prov = {**(provenance or {}), "seed": int(seed), "epochs": epoch + 1, "history": history,
                        "train_losses": [h["train_loss"] for h in history],
                        "metrics": {k: record[k] for k in ("val_loss", "oa", "f1_glacier", "mean_f1", "miou")},
                        "recipe": {**(provenance or {}).get("recipe", {}), "batch_size": batch_size, "lr": lr,
                                   "weight_decay": weight_decay, "warmup": warmup, "schedule": "cosine",
                                   "optimizer": "AdamW", "loss": "dice+ce", "augment": augment}}
                model.eval()
                if score > best:
                    save(model, out / "best.pt", provenance={**prov, "best_epoch": epoch + 1})
                save(model, out / "last.pt", provenance=prov)
                torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                            "loader_generator": loader_gen.get_state(), "augment_generator": aug_gen.get_state(),
                            "torch_rng": torch.get_rng_state(), "history": history, "epoch": epoch + 1,
                            "best": max(best, score)}, state_path(out / "last.pt"))
            best = max(best, score)
            epoch += 1
    finally:
        bar.close()
    model.eval()
    return history
