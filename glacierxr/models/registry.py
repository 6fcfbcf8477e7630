"""The registry of architectures: names, presets, named variants and :func:`create`."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from glacierxr.errors import UnknownModelError
from glacierxr.models.band_ratio import BandRatio, BandRatioConfig
from glacierxr.models.base import GlacierModel, ModelConfigError, resolve_bands, resolve_normalization
from glacierxr.models.deeplab import DeepLabConfig, DeepLabV3Plus
from glacierxr.models.lgt import LGTConfig, LGTSegmenter
from glacierxr.models.swin import SwinConfig, SwinUNet
from glacierxr.models.unet import UNet, UNetConfig

__all__ = ["ModelEntry", "PRESETS", "available", "create", "describe", "get_entry", "register", "with_bands"]

#: Preset names every architecture has.
PRESETS = ("paper", "small", "tiny")


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture (or named variant of one)."""

    #: Registry name.
    name: str
    #: Model class; called as ``model_cls(config, arch=, preset=, bands=, normalization=)``.
    model_cls: type[GlacierModel]
    #: Frozen dataclass of the configuration.
    config_cls: type
    #: Preset name -> config values (on top of the dataclass defaults).
    presets: Mapping[str, Mapping[str, Any]]
    #: Config values that define this variant (applied after the preset, before user overrides).
    fixed: Mapping[str, Any] = field(default_factory=dict)
    #: One-line description (also the ``mlm:architecture`` text).
    description: str = ""
    #: Bands used when ``create`` gets ``bands=None`` (``None``: the caller must give them).
    default_bands: tuple[str, ...] | None = None
    #: Parameter count of the paper's Table 3 row, in millions (``None`` where it has none).
    paper_params_m: float | None = None


_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    """Add ``entry`` to the registry (replacing an entry of the same name) and return it."""
    missing = [p for p in PRESETS if p not in entry.presets]
    if missing:
        raise ModelConfigError(f"{entry.name!r} must define the presets {list(PRESETS)}; missing {missing}")
    _REGISTRY[entry.name] = entry
    return entry


def available(pretrained: bool = False) -> list[str]:
    """Registered architecture names, sorted; with ``pretrained=True`` the shipped checkpoints'
    names (``ARCH.TAG``, loadable with :func:`glacierxr.models.load`)."""
    if pretrained:
        from glacierxr.models import pretrained as shipped

        return shipped.names()
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` of ``name``; :class:`UnknownModelError` listing valid names otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownModelError(f"unknown model {name!r}; available: {', '.join(available())}") from None


def build_config(config_cls: type, values: Mapping[str, Any], *, arch: str):
    """Instantiate ``config_cls`` from ``values``, converting lists to tuples where the field is a tuple."""
    valid = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ModelConfigError(
            f"{arch!r} has no option(s) {unknown}; valid options: {', '.join(sorted(valid))}"
        )
    hints = typing.get_type_hints(config_cls)
    kwargs = {}
    for key, value in values.items():
        if typing.get_origin(hints[key]) is tuple and isinstance(value, (list, tuple)):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[key] = value
    try:
        return config_cls(**kwargs)
    except TypeError as exc:  # a value of the wrong type reaching a comparison in __post_init__
        raise ModelConfigError(f"invalid options for {arch!r}: {exc}") from exc


def create(
    name: str,
    *,
    bands: Sequence[str] | None = None,
    preset: str = "small",
    normalization: Mapping[str, Sequence[float]] | None = None,
    **overrides: Any,
) -> GlacierModel:
    """Build a model by registry name.

    Parameters
    ----------
    name
        Architecture name, one of :func:`available` (e.g. ``"lgt-lgcb"``, ``"unet"``, ``"band-ratio"``).
    bands
        Cube variable names the model reads, in channel order (e.g. ``["B02", "B03", "B04", "B08",
        "B11", "VV", "VH", "elevation"]``). Required except for ``"band-ratio"`` (default
        ``("B04", "B11")``).
    preset
        ``"paper"`` (the sizes of the paper / the original architecture), ``"small"`` or ``"tiny"``
        (for tests and CPU demos).
    normalization
        ``{band: (mean, std)}`` of the input normalisation; bands left out take the defaults of
        :data:`glacierxr.models.base.DEFAULT_NORMALIZATION`.
    **overrides
        Configuration values replacing the preset's, e.g. ``encoder_pattern=("LL", "LG", "LG", "GG")``,
        ``decoder="resnet18"``, ``pos_encoding="abs"`` for the LGT models.

    Returns
    -------
    GlacierModel
        A freshly initialised model in training mode.

    Raises
    ------
    UnknownModelError
        If ``name`` or ``preset`` is not registered (the message lists the valid ones).
    ModelConfigError
        If an override, the bands or the normalisation is invalid.
    """
    entry = get_entry(name)
    if preset not in entry.presets:
        raise UnknownModelError(f"unknown preset {preset!r} for {name!r}; available: {', '.join(entry.presets)}")
    values = {**entry.presets[preset], **entry.fixed, **overrides}
    cfg = build_config(entry.config_cls, values, arch=name)
    band_tuple = resolve_bands(bands, default=entry.default_bands, arch=name)
    norm = resolve_normalization(band_tuple, normalization)
    return entry.model_cls(cfg, arch=name, preset=preset, bands=band_tuple, normalization=norm)


def with_bands(model: GlacierModel, bands: Sequence[str],
               normalization: Mapping[str, Sequence[float]] | None = None) -> GlacierModel:
    """A copy of a trained ``model`` that reads ``bands``: the start of fine-tuning on other data.

    Every weight is copied except the input layer's: its channels for bands both models read are
    copied, those for new bands start at 0 (so the new model first ignores them and computes what
    the old one computed from the shared bands). Bands only the old model read are dropped.

    Parameters
    ----------
    model
        The trained model.
    bands
        The new model's bands, in order; at least one of them must be one of ``model.bands``.
    normalization
        ``band -> (mean, std)`` of the new bands; the old model's values are kept for shared
        bands not given here, defaults apply to the rest.

    Raises
    ------
    ModelConfigError
        If no band is shared, or the architecture's layers do not allow the transfer.
    """
    import torch

    bands = resolve_bands(bands, default=None, arch=model.arch)
    shared = [b for b in bands if b in model.bands]
    if not shared:
        raise ModelConfigError(
            f"the model reads {list(model.bands)} and none of them is in {list(bands)}; fine-tune a model "
            "that shares at least one band, or train from scratch."
        )
    norm = {**{b: model.normalization[b] for b in shared}, **dict(normalization or {})}
    new = create(model.arch, bands=bands, preset=model.preset, normalization=norm, **model.config)
    old_state, state = model.state_dict(), new.state_dict()
    # the input layer: the parameters whose shape changes with the number of bands
    probe = create(model.arch, bands=[*model.bands, "__probe__"], preset=model.preset, **model.config).state_dict()
    inputs = {k for k, v in old_state.items() if probe[k].shape != v.shape}
    with torch.no_grad():
        for name, tensor in state.items():
            src = old_state[name]
            if name not in inputs:
                tensor.copy_(src)
            elif src.ndim >= 2 and src.shape[1] - len(model.bands) == tensor.shape[1] - len(bands) >= 0:
                # channels 0..n-1 read the bands; any after them (e.g. the refinement's logits) are kept
                tensor.zero_()
                tensor[:, len(bands):] = src[:, len(model.bands):]
                for j, b in enumerate(bands):
                    if b in model.bands:
                        tensor[:, j] = src[:, model.bands.index(b)]
            else:
                raise ModelConfigError(f"cannot move {name!r} of {model.arch!r} from {tuple(src.shape)} to "
                                       f"{tuple(tensor.shape)}; train from scratch on these bands.")
    new.load_state_dict(state)
    new.provenance = {**model.provenance, "adapted_from": {"bands": list(model.bands)}}
    return new


# --------------------------------------------------------------------------------------------------
# Built-in architectures.

_LGT_PRESETS: dict[str, dict[str, Any]] = {
    # C1 = 64 doubling, patch sizes 4/8/16/32 (Peng et al. 2023); depths, heads, window 7 and
    # sub-sampling 8/4/2/1 of Twins-SVT-S; UNetFormer's decoder width 64, 8 heads, window 8.
    "paper": {},
    # small and tiny (CPU) add the full-resolution refinement of the logits: +0.015-0.03 glacier IoU
    # on held-out regions, the difference between losing to the band ratio and beating it
    # (benchmarks/experiments/RECIPE.md); "paper" keeps the paper's stride-4 head.
    "small": dict(embed_dims=(32, 64, 128, 256), depths=(2, 2, 4, 2), num_heads=(1, 2, 4, 8), windows=(8, 8, 8, 8),
                  drop_path_rate=0.1, decoder_channels=32, decoder_heads=4, pe_size=256, refine_channels=16),
    "tiny": dict(embed_dims=(16, 32, 64, 128), depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 4), windows=(8, 8, 8, 8),
                 drop_path_rate=0.0, decoder_channels=16, decoder_heads=2, pe_size=256, refine_channels=16),
}

_LGT_VARIANTS = {
    # name: (fixed config, description, Table 3 parameters in M)
    "lgt-lgcb": ({}, "LGT encoder + LGCB decoder (Peng et al. 2023)", 107.5),
    "lgt-lgt": ({"decoder": "lgt"}, "LGT encoder + Transformer (LGT) decoder (Peng et al. 2023, Table 3)", 156.2),
    "lgt-resnet18": ({"decoder": "resnet18"}, "LGT encoder + ResNet18-style CNN decoder (Table 3)", 40.1),
    "lgt-resnet50": ({"decoder": "resnet50"}, "LGT encoder + ResNet50-style CNN decoder (Table 3)", 50.1),
    "pe-lgt-lgcb": ({"pos_encoding": "abs"}, "LGT + LGCB with learned absolute position embedding (Table 3)",
                    105.5),
}

for _name, (_fixed, _desc, _params) in _LGT_VARIANTS.items():
    register(ModelEntry(_name, LGTSegmenter, LGTConfig, _LGT_PRESETS, _fixed, _desc, paper_params_m=_params))

register(ModelEntry(
    "unet", UNet, UNetConfig,
    {"paper": {}, "small": {"base_channels": 16}, "tiny": {"base_channels": 8}},
    description="U-Net (Ronneberger et al. 2015)",
))

_DEEPLAB_PRESETS = {
    "paper": {},
    "small": dict(backbone="resnet18", backbone_width=32, aspp_channels=64, low_level_channels=24),
    "tiny": dict(backbone="resnet18", backbone_width=8, aspp_channels=16, low_level_channels=8, cbam_reduction=4),
}
register(ModelEntry("deeplabv3plus", DeepLabV3Plus, DeepLabConfig, _DEEPLAB_PRESETS, {"cbam": False},
                    "DeepLabV3+ with a ResNet backbone, output stride 16 (Chen et al. 2018)"))
register(ModelEntry("attention-deeplabv3plus", DeepLabV3Plus, DeepLabConfig, _DEEPLAB_PRESETS, {"cbam": True},
                    "Attention DeepLabV3+: CBAM parallel to ASPP, used with TTA (Chu et al. 2022)"))

register(ModelEntry(
    "swin", SwinUNet, SwinConfig,
    {
        "paper": {},
        "small": dict(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window=8, drop_path_rate=0.1),
        "tiny": dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), decoder_depths=(2, 2, 2), window=8,
                     drop_path_rate=0.0),
    },
    description="Swin Transformer encoder + U-shaped Swin decoder (Liu et al. 2021; Cao et al. 2022)",
))

register(ModelEntry(
    "band-ratio", BandRatio, BandRatioConfig, {"paper": {}, "small": {}, "tiny": {}},
    description="Red/SWIR band ratio with optional NDSI and NDWI tests (Paul et al. 2002, 2015)",
    default_bands=("B04", "B11"),
))


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
