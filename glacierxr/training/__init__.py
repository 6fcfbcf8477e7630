"""Training: chips from a cube and outlines, D4 augmentation, Dice + CE loss, the training loop.

>>> from glacierxr.training import rasterize_labels, chip_windows, ChipDataset, train  # doctest: +SKIP
"""

from glacierxr.training.augment import RandomD4, d4, random_d4
from glacierxr.training.chips import ChipDataset, chip_windows, rasterize_labels
from glacierxr.training.data import CachedChips, cache_chips, training_data
from glacierxr.training.experiment import BAND_GROUPS, bands_of, markdown_tables, run_experiment
from glacierxr.training.fit import fit, run_dir
from glacierxr.training.losses import dice_ce_loss, dice_loss
from glacierxr.training.loop import state_path, train, validate

__all__ = ["BAND_GROUPS", "CachedChips", "ChipDataset", "RandomD4", "bands_of", "cache_chips", "chip_windows", "d4",
           "dice_ce_loss", "dice_loss", "fit", "markdown_tables", "random_d4", "rasterize_labels", "run_dir",
           "run_experiment", "state_path", "train", "training_data", "validate"]
