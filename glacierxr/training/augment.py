"""D4 augmentation (identity, 90/180/270 rotations, flip, mirror and the two diagonals), applied
identically to bands and labels."""

from __future__ import annotations

import torch

from glacierxr.errors import InvalidArgumentError

__all__ = ["d4", "random_d4", "RandomD4", "D4_NAMES"]

#: The eight elements of the dihedral group D4, indexed as in :func:`d4`.
D4_NAMES = ("identity", "rot90", "rot180", "rot270", "flip", "flip+rot90", "flip+rot180", "flip+rot270")


def d4(x: torch.Tensor, y: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply D4 element ``k`` (0..7) to bands ``x (..., C, H, W)`` and labels ``y (..., H, W)``.

    ``k % 4`` quarter turns (counter-clockwise) after a vertical flip (upside down) when ``k >= 4``;
    ``k = 6`` is a horizontal mirror. The same spatial transform is applied to both tensors.
    """
    if not 0 <= int(k) < 8:
        raise InvalidArgumentError(f"k={k!r} must be in 0..7 (an element of D4).")
    if x.shape[-2:] != y.shape[-2:]:
        raise InvalidArgumentError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must share their last two dims.")
    if k >= 4:
        x, y = torch.flip(x, dims=(-2,)), torch.flip(y, dims=(-2,))
    turns = int(k) % 4
    if turns:
        x, y = torch.rot90(x, turns, dims=(-2, -1)), torch.rot90(y, turns, dims=(-2, -1))
    return x.contiguous(), y.contiguous()


def random_d4(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random D4 element per sample of a batch ``x (N, C, H, W)``, ``y (N, H, W)`` (square chips)."""
    if x.ndim != 4 or y.ndim != 3 or x.shape[0] != y.shape[0]:
        raise InvalidArgumentError(f"need x (N, C, H, W) and y (N, H, W); got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[-1] != x.shape[-2]:
        raise InvalidArgumentError(f"random rotations need square chips; got {tuple(x.shape[-2:])}")
    ks = torch.randint(0, 8, (x.shape[0],), generator=generator).tolist()
    pairs = [d4(xi, yi, k) for xi, yi, k in zip(x, y, ks, strict=True)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


class RandomD4:
    """A seeded per-sample D4 transform for :class:`~glacierxr.training.chips.ChipDataset`.

    ``RandomD4(seed)(x, y)`` draws one of the eight elements from its own generator, so a run
    with the same seed and the same sample order sees the same augmentations.
    """

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def reset(self) -> None:
        """Restart the draw sequence from the seed."""
        self.generator.manual_seed(self.seed)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = int(torch.randint(0, 8, (1,), generator=self.generator))
        return d4(x, y, k)
