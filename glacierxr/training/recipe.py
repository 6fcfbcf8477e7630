"""Named training recipes: what ``glacierxr train`` does when given no option.

``"cpu"`` (the default) trains a model from scratch to beat the band ratio in minutes on a laptop;
``"paper"`` is the recipe of Peng et al. (2023) for paper-scale runs on a GPU. Every value of a
recipe can be overridden; ``benchmarks/experiments/RECIPE.md`` holds the ablation behind each
choice of ``"cpu"``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from glacierxr.errors import InvalidArgumentError
from glacierxr.training.sampling import SAMPLINGS

__all__ = ["Recipe", "RECIPES", "recipe"]


@dataclass(frozen=True)
class Recipe:
    """How to train: optimiser, schedule, budget, chips and sampling.

    Attributes
    ----------
    name
        The recipe's name.
    lr, weight_decay
        AdamW learning rate (peak, after warm-up) and weight decay.
    warmup
        Share of all steps with a linear warm-up from 0; then a cosine decay to 0.
    epochs
        Epochs at most.
    per_epoch
        Random training chips per epoch (``None``: the fixed grid of chips, the paper's way).
    batch_size, chip
        Chips per step and chip side (px).
    sampling
        ``"balanced"`` (over-sample glacier edges and hard pixels) or ``"uniform"``.
    patience
        Stop after this many epochs without a better validation mIoU (``None``: never).
    time_limit
        Seconds of training at most: after the first epoch the number of epochs is cut to fit,
        and the schedule with it (``None``: no limit).
    val_fraction
        Share of the area's blocks held out for validation.
    """

    name: str
    lr: float
    weight_decay: float = 1e-2
    warmup: float = 0.0
    epochs: int = 100
    per_epoch: int | None = None
    batch_size: int = 4
    chip: int = 256
    sampling: str = "uniform"
    patience: int | None = None
    time_limit: float | None = None
    val_fraction: float = 0.2

    def __post_init__(self) -> None:
        problems = []
        if not self.lr > 0:
            problems.append(f"lr={self.lr!r} must be > 0")
        if self.weight_decay < 0:
            problems.append(f"weight_decay={self.weight_decay!r} must be >= 0")
        if not 0 <= self.warmup < 1:
            problems.append(f"warmup={self.warmup!r} must be in [0, 1)")
        for key in ("epochs", "batch_size", "chip"):
            v = getattr(self, key)
            if isinstance(v, bool) or int(v) != v or v < 1:
                problems.append(f"{key}={v!r} must be a positive integer")
        if self.per_epoch is not None and self.per_epoch < 1:
            problems.append(f"per_epoch={self.per_epoch!r} must be a positive integer or None")
        if self.chip % 32:
            problems.append(f"chip={self.chip!r} must be a multiple of 32 (the models' output stride)")
        if self.sampling not in SAMPLINGS:
            problems.append(f"sampling={self.sampling!r} must be one of {', '.join(SAMPLINGS)}")
        if self.patience is not None and self.patience < 1:
            problems.append(f"patience={self.patience!r} must be a positive number of epochs or None")
        if self.time_limit is not None and not self.time_limit > 0:
            problems.append(f"time_limit={self.time_limit!r} must be > 0 seconds or None")
        if not 0 <= self.val_fraction < 1:
            problems.append(f"val_fraction={self.val_fraction!r} must be in [0, 1)")
        if problems:
            raise InvalidArgumentError(f"recipe {self.name!r}: " + "; ".join(problems) + ".")

    def to_dict(self) -> dict[str, Any]:
        """The recipe as a JSON-serialisable dict (recorded in checkpoints)."""
        return dataclasses.asdict(self)


#: The built-in recipes.
RECIPES: dict[str, Recipe] = {
    # from scratch on 2 CPU cores: a peak lr 20x the paper's (it converges in ~1,300 steps), a
    # short warm-up (no measured gain on tiny, kept as the usual guard for larger models), 128 px
    # chips in batches of 8 (4x the steps of 256 px chips for the same pixels), balanced random
    # chips, early stopping, and a 12-minute cap so that a run with its data preparation stays
    # under 15 minutes. The ablation behind each value: benchmarks/experiments/RECIPE.md.
    "cpu": Recipe("cpu", lr=2e-3, warmup=0.05, epochs=40, per_epoch=256, batch_size=8, chip=128,
                  sampling="balanced", patience=10, time_limit=720.0),
    # Peng et al. (2023): AdamW, lr 1e-4, cosine schedule, batch 4, 256 px chips, 100 epochs.
    "paper": Recipe("paper", lr=1e-4, warmup=0.0, epochs=100, per_epoch=None, batch_size=4, chip=256,
                    sampling="uniform", patience=None, time_limit=None, val_fraction=0.3),
    # fine-tuning a trained model: a tenth of the peak lr, a shorter budget
    "finetune": Recipe("finetune", lr=2e-4, warmup=0.05, epochs=20, per_epoch=256, batch_size=8, chip=128,
                       sampling="balanced", patience=6, time_limit=600.0),
}


def recipe(name: str | Recipe = "cpu", **overrides: Any) -> Recipe:
    """The recipe ``name`` with ``overrides`` (``None`` values are ignored), validated.

    Raises
    ------
    InvalidArgumentError
        For an unknown recipe, an unknown option or an invalid value.
    """
    base = name if isinstance(name, Recipe) else RECIPES.get(name)
    if base is None:
        raise InvalidArgumentError(f"unknown recipe {name!r}; recipes: {', '.join(RECIPES)}.")
    valid = {f.name for f in dataclasses.fields(Recipe)} - {"name"}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise InvalidArgumentError(f"recipe options {unknown} do not exist; valid: {', '.join(sorted(valid))}.")
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
