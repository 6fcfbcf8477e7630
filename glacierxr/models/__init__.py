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

from glacierxr._lazy import lazy_namespace

_ATTRIBUTES = {
    "DEFAULT_NORMALIZATION": "glacierxr.models.base", "GlacierModel": "glacierxr.models.base",
    "ModelConfigError": "glacierxr.errors", "CheckpointNotFoundError": "glacierxr.errors",
    "load": "glacierxr.models.checkpoint", "mlm_item": "glacierxr.models.checkpoint",
    "mlm_path": "glacierxr.models.checkpoint", "save": "glacierxr.models.checkpoint",
    "check_inputs": "glacierxr.models.inputs", "inputs_of": "glacierxr.models.inputs",
    "PRESETS": "glacierxr.models.registry", "available": "glacierxr.models.registry",
    "create": "glacierxr.models.registry", "describe": "glacierxr.models.registry",
    "get_entry": "glacierxr.models.registry", "with_bands": "glacierxr.models.registry",
    "resolve": "glacierxr.models.resolve",
}
_SUBMODULES = ("band_ratio", "base", "checkpoint", "decoders", "deeplab", "inputs", "layers", "lgt", "pretrained",
               "registry", "resnet", "resolve", "swin", "unet")

#: torch is imported with the first model name used, not with the package (see :mod:`glacierxr._lazy`).
__getattr__, __dir__ = lazy_namespace(__name__, _ATTRIBUTES, _SUBMODULES)

__all__ = sorted(_ATTRIBUTES)
