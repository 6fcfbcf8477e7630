"""The model zoo: the paper's LGT+LGCB Transformer, its Table 3 variants, four baselines and the band ratio.

>>> import glacierxr as gx
>>> model = gx.models.create("lgt-lgcb", bands=["B02", "B03", "B04", "B08", "B11"], preset="tiny")
>>> model.output_stride, model.bands[:2]
(32, ('B02', 'B03'))

Every model maps normalised bands ``(N, C, H, W)`` to logits ``(N, 2, H, W)`` (background, glacier)
and carries ``arch``, ``preset``, ``config``, ``bands``, ``normalization``, ``output_stride``,
``recommended_overlap`` and ``default_tta``. :func:`save` / :func:`load` write and read one
self-describing file plus a STAC MLM JSON beside it.
"""

from __future__ import annotations

from typing import Any

from glacierxr.models.base import DEFAULT_NORMALIZATION, GlacierModel, ModelConfigError
from glacierxr.models.checkpoint import CheckpointNotFoundError, load, mlm_item, mlm_path, save
from glacierxr.models.inputs import check_inputs, inputs_of
from glacierxr.models.registry import PRESETS, available, create, get_entry, with_bands

__all__ = [
    "DEFAULT_NORMALIZATION",
    "PRESETS",
    "CheckpointNotFoundError",
    "GlacierModel",
    "ModelConfigError",
    "available",
    "check_inputs",
    "create",
    "describe",
    "inputs_of",
    "load",
    "mlm_item",
    "mlm_path",
    "save",
    "with_bands",
]


def describe(model: GlacierModel) -> dict[str, Any]:
    """A JSON-serialisable summary of ``model``.

    Parameters
    ----------
    model
        A glacierxr model.

    Returns
    -------
    dict
        ``arch``, ``description``, ``preset``, ``bands``, ``normalization``, ``output_stride``,
        ``recommended_overlap``, ``default_tta``, ``parameters``, ``trainable_parameters``,
        ``paper_parameters_m`` (Table 3 of Peng et al. 2023, or ``None``), ``config`` and
        ``provenance``.
    """
    if not isinstance(model, GlacierModel):
        raise TypeError(f"describe() needs a glacierxr model; got {type(model).__name__}")
    entry = get_entry(model.arch)
    return {
        "arch": model.arch,
        "description": entry.description,
        "preset": model.preset,
        "bands": list(model.bands),
        "normalization": {b: list(v) for b, v in model.normalization.items()},
        "output_stride": model.output_stride,
        "recommended_overlap": model.recommended_overlap,
        "default_tta": model.default_tta,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "paper_parameters_m": entry.paper_params_m,
        "config": dict(model.config),
        "provenance": dict(getattr(model, "provenance", {})),
    }
