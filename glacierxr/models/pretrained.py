"""Checkpoints shipped inside the package, named ``ARCH.TAG`` (timm style).

``glacierxr/models/weights/<ARCH.TAG>.pt`` (+ its STAC MLM JSON) is a checkpoint written by
:func:`glacierxr.models.save`; :func:`glacierxr.models.load` and every CLI ``--model`` accept its
name. How each was trained, and how to train it again, is in its provenance and in
``benchmarks/train_pretrained.py``.
"""

from __future__ import annotations

from pathlib import Path

from glacierxr.errors import CheckpointNotFoundError

__all__ = ["WEIGHTS", "names", "path_of", "is_name"]

#: Folder of the shipped checkpoints.
WEIGHTS = Path(__file__).with_name("weights")


def names() -> list[str]:
    """Names of the shipped checkpoints, sorted (e.g. ``["lgt-lgcb.synth-s2"]``)."""
    return sorted(p.stem for p in WEIGHTS.glob("*.pt"))


def is_name(name: object) -> bool:
    """Whether ``name`` looks like ``ARCH.TAG`` rather than a file path."""
    return isinstance(name, str) and "/" not in name and "\\" not in name and not name.endswith((".pt", ".pth")) \
        and "." in name


def path_of(name: str) -> Path:
    """The file of the shipped checkpoint ``name``; :class:`CheckpointNotFoundError` listing them otherwise."""
    path = WEIGHTS / f"{name}.pt"
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"no shipped checkpoint named {name!r}; shipped: {', '.join(names()) or '(none)'}. "
            "Pass a checkpoint path, or one of these names."
        )
    return path
