"""One rule for "which model did the user mean": used by predict, the regional run and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glacierxr.errors import InvalidArgumentError, UnknownModelError

__all__ = ["resolve", "BAND_RATIO_BANDS"]

#: The bands of the band ratio whenever it is named rather than built: green, red, NIR and SWIR
#: (the red/SWIR ratio, with NDSI and NDVI from the same four bands).
BAND_RATIO_BANDS = ("B03", "B04", "B08", "B11")


def resolve(model: Any) -> Any:
    """The model ``model`` stands for.

    Parameters
    ----------
    model
        A glacierxr model (returned as it is); ``"band-ratio"`` (on :data:`BAND_RATIO_BANDS`);
        the name of a shipped checkpoint (``"lgt-lgcb.synth-s2"``, the ``ARCH.TAG`` names of
        ``glacierxr.models.available(pretrained=True)``); or the path of a checkpoint written by
        :func:`glacierxr.models.save`.

    Returns
    -------
    GlacierModel

    Raises
    ------
    InvalidArgumentError
        For the name of a learned architecture without weights (``"unet"``).
    UnknownModelError
        For a name that is none of the above.
    CheckpointNotFoundError
        For a path (``.pt``, or with a separator) that does not exist.
    """
    from glacierxr import models

    if not isinstance(model, str | Path):
        return model
    if isinstance(model, Path) or Path(model).exists():
        return models.load(model)
    if model == "band-ratio":
        return models.create("band-ratio", bands=list(BAND_RATIO_BANDS))
    shipped = models.available(pretrained=True)
    if model in shipped:
        return models.load(model)
    if model in models.available():
        raise InvalidArgumentError(
            f"model={model!r}: a learned architecture needs trained weights; pass a shipped checkpoint "
            f"({', '.join(shipped)}), a checkpoint path (gx.models.save), or 'band-ratio' for the non-learned method."
        )
    if Path(model).suffix in (".pt", ".pth") or "/" in model or "\\" in model:
        return models.load(model)  # CheckpointNotFoundError naming the path
    raise UnknownModelError(
        f"model={model!r} is neither a checkpoint file nor a known model; pass a shipped checkpoint "
        f"({', '.join(shipped)}), the path of a checkpoint written by gx.models.save, or 'band-ratio' for the "
        "non-learned method."
    )
