"""Training: chips from a cube and outlines, D4 augmentation, Dice + CE loss, the training loop.

>>> from glacierxr.training import rasterize_labels, chip_windows, ChipDataset, train  # doctest: +SKIP
"""

from glacierxr.training.augment import RandomD4, d4, random_d4
from glacierxr.training.chips import ChipDataset, chip_windows, rasterize_labels
from glacierxr.training.losses import dice_ce_loss, dice_loss
from glacierxr.training.loop import state_path, train, validate

__all__ = ["ChipDataset", "RandomD4", "chip_windows", "d4", "dice_ce_loss", "dice_loss", "random_d4",
           "rasterize_labels", "state_path", "train", "validate"]
