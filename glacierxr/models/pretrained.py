"""Checkpoints shipped inside the package, named ``ARCH.TAG`` (timm style).

``glacierxr/models/weights/<ARCH.TAG>.pt`` (+ its STAC MLM JSON) is a checkpoint written by
:func:`glacierxr.models.save`; :func:`glacierxr.models.load` and every CLI ``--model`` accept its
name. How each was trained, and how to train it again, is in its provenance and in
``benchmarks/train_pretrained.py``.

``lgt-lgcb.synth-s2``
    The paper's LGT encoder + LGCB decoder, ``tiny`` preset (0.67 M parameters, 2.7 MB), on the
    bands ``VV VH B02 B03 B04 B08 B11 NDVI NDSI NDWI elevation`` (Sentinel-1 gamma0, Sentinel-2
    L2A reflectance, the indices, a DEM) at 10 m. Trained with the ``cpu`` recipe for 60 epochs
    (18 min on 2 CPU cores) on eight seeded synthetic regions (seeds 1001-1008, 1024 x 1024 px,
    62 N to 50 S) that no test, example or demo uses. On three other synthetic regions: glacier
    IoU 0.9975 against the band ratio's 0.9582, and it finds 98 % of the debris-covered ice the
    band ratio misses entirely. **It has seen no real image**: its synthetic reflectances,
    backscatter and terrain are simplified, so on real scenes it is a starting point for
    fine-tuning (``glacierxr train --init lgt-lgcb.synth-s2 --outlines rgi.gpkg ...``), not a
    validated product.
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
