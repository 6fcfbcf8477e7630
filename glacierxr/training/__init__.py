"""Training: named recipes, a training raster and balanced chips from a cube and outlines, D4
augmentation, Dice + CE loss, the training loop, fine-tuning.

>>> from glacierxr.training import fit, recipe  # doctest: +SKIP
"""

from glacierxr.training.augment import RandomD4, d4, random_d4
from glacierxr.training.chips import ChipDataset, chip_windows, rasterize_labels
from glacierxr.training.experiment import BAND_GROUPS, bands_of, markdown_tables, run_experiment
from glacierxr.training.fit import fit, run_dir
from glacierxr.training.loop import state_path, train, validate
from glacierxr.training.losses import IGNORE, dice_ce_loss, dice_loss
from glacierxr.training.recipe import RECIPES, Recipe, recipe
from glacierxr.training.sampling import GridChips, RandomChips, TrainingRaster, training_raster

__all__ = ["BAND_GROUPS", "ChipDataset", "GridChips", "IGNORE", "RECIPES", "RandomChips", "RandomD4", "Recipe",
           "TrainingRaster", "bands_of", "chip_windows", "d4", "dice_ce_loss", "dice_loss", "fit", "markdown_tables",
           "random_d4", "rasterize_labels", "recipe", "run_dir", "run_experiment", "state_path", "train",
           "training_raster", "validate"]
