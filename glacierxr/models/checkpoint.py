"""Self-describing checkpoints and their STAC MLM (Machine Learning Model extension) metadata.

A checkpoint is one ``torch.save`` file holding only plain Python types and tensors, so it loads
with ``torch.load(..., weights_only=True)``::

    {"format": "glacierxr-checkpoint", "format_version": 1,
     "arch": str, "preset": str, "config": dict, "bands": [str], "normalization": {band: [mean, std]},
     "state_dict": {name: tensor}, "provenance": dict, "torch_version": str,
     "inputs": {"sensors": [str], "resolution": float, "units": {band: str}}}  # inputs: optional

:func:`save` also writes ``<checkpoint>.mlm.json``, a STAC Item with the MLM extension v1.4.0
describing the inputs (bands, shape, z-score value scaling), outputs (two-class logits) and the
architecture.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import pickle
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from glacierxr.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointVersionError,
    InvalidArgumentError,
    UnknownModelError,
)
from glacierxr.models.base import GlacierModel, ModelConfigError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointNotFoundError",
    "MLM_SCHEMA",
    "load",
    "mlm_item",
    "mlm_path",
    "save",
]

#: Value of the ``format`` key of every glacierxr checkpoint.
CHECKPOINT_FORMAT = "glacierxr-checkpoint"
#: Newest checkpoint format version this glacierxr reads and the one it writes.
CHECKPOINT_VERSION = 1
#: The STAC MLM extension schema the metadata follows.
MLM_SCHEMA = "https://stac-extensions.github.io/mlm/v1.4.0/schema.json"

_REQUIRED = ("arch", "preset", "config", "bands", "normalization", "state_dict", "provenance")


def mlm_path(path: str | os.PathLike) -> Path:
    """Where :func:`save` writes the STAC MLM JSON of the checkpoint at ``path``: ``<path>.mlm.json``."""
    path = Path(path)
    return path.with_name(path.name + ".mlm.json")


def _glacierxr_version() -> str:
    from glacierxr import __version__

    return __version__


def _plain_json(value: Any, what: str) -> Any:
    """``value`` after a JSON round trip (plain types only), or :class:`ModelConfigError`."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ModelConfigError(
            f"{what} must be JSON-serialisable (str, number, bool, None, list, dict): {exc}"
        ) from exc


def save(model: GlacierModel, path: str | os.PathLike, *, provenance: Mapping[str, Any] | None = None,
         write_mlm: bool = True) -> Path:
    """Write ``model`` (weights, architecture, bands, normalisation, provenance) to one file.

    Parameters
    ----------
    model
        A model from :func:`glacierxr.models.create` or :func:`load`.
    path
        Checkpoint file to write (conventionally ``*.pt``); parent folders are created. The file is
        written to a temporary name first and renamed, so a crash never leaves half a checkpoint.
    provenance
        JSON-serialisable training information (data, epochs, metrics, ...); ``created`` (UTC time)
        and ``glacierxr_version`` are added. Merged over the model's own :attr:`provenance`.
    write_mlm
        Also write the STAC MLM Item ``<path>.mlm.json`` (see :func:`mlm_item`).

    Returns
    -------
    pathlib.Path
        The checkpoint path.
    """
    if not isinstance(model, GlacierModel):
        raise TypeError(f"save() needs a glacierxr model (from glacierxr.models.create); got {type(model).__name__}")
    path = Path(path)
    prov = {**getattr(model, "provenance", {}), **dict(provenance or {})}
    prov["created"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    prov["glacierxr_version"] = _glacierxr_version()
    prov = _plain_json(prov, "provenance")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "arch": model.arch,
        "preset": model.preset,
        "config": _plain_json(model.config, "model.config"),
        "bands": list(model.bands),
        "normalization": {b: [float(m), float(s)] for b, (m, s) in model.normalization.items()},
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "provenance": prov,
        "torch_version": str(torch.__version__),
        "inputs": _plain_json(getattr(model, "inputs", {}) or {}, "model.inputs"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda f: torch.save(payload, f))
    if write_mlm:
        item = mlm_item(model, path, provenance=prov)
        _atomic_write(mlm_path(path), lambda f: f.write(json.dumps(item, indent=2).encode()))
    model.provenance = prov
    return path


def _atomic_write(path: Path, write) -> None:
    """Write via a temporary file renamed into place, with the permissions a plain open would give.

    ``mkstemp`` creates its file as 0600; a checkpoint is meant to be shared, so it gets 0666
    minus the umask (0644 usually), as ``open(path, "w")`` would.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it back at once
    os.umask(mask)
    return mask


def _read(path: Path, map_location) -> dict:
    if not path.is_file():
        raise CheckpointNotFoundError(f"no checkpoint at {str(path)!r}; check the path")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, TypeError,
            AttributeError, ImportError, IndexError, KeyError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{str(path)!r} is not a glacierxr checkpoint: torch.load could not read it safely "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Pass a file written by "
            "glacierxr.models.save; if it is one, it is truncated or corrupt: copy or download it again"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        if isinstance(payload, dict):
            what = "a dict without format='glacierxr-checkpoint'"
        else:
            what = f"a {type(payload).__name__}"
        raise CheckpointError(
            f"{str(path)!r} is not a glacierxr checkpoint (it holds {what}); write one with glacierxr.models.save"
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{str(path)!r} has an invalid format_version {version!r}")
    if version > CHECKPOINT_VERSION:
        raise CheckpointVersionError(
            f"{str(path)!r} has checkpoint format version {version}, written by a newer glacierxr (this one reads "
            f"up to {CHECKPOINT_VERSION}); upgrade with pip install -U glacierxr"
        )
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"{str(path)!r} is an incomplete glacierxr checkpoint: missing {missing}")
    if not isinstance(payload["state_dict"], dict) or not isinstance(payload["config"], dict):
        raise CheckpointError(f"{str(path)!r} is corrupt: state_dict and config must be dicts")
    return payload


def load(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> GlacierModel:
    """Rebuild a model from a checkpoint written by :func:`save`.

    Parameters
    ----------
    path
        The checkpoint file, or the name of a shipped one (``"lgt-lgcb.synth-s2"``, see
        :func:`glacierxr.models.available` with ``pretrained=True``).
    map_location
        Device the tensors are loaded to (passed to :func:`torch.load`); when it is a device
        (string or :class:`torch.device`) the model is moved there too.

    Returns
    -------
    GlacierModel
        The model, in evaluation mode, with ``provenance`` set from the file.

    Raises
    ------
    CheckpointNotFoundError
        If ``path`` does not exist.
    CheckpointError
        If the file is not a glacierxr checkpoint, is incomplete, or its weights do not fit the
        architecture it names (the first mismatched parameter is named).
    CheckpointVersionError
        If it was written by a newer glacierxr.
    UnknownModelError
        If it names an architecture this glacierxr does not know.
    """
    from glacierxr.models import pretrained
    from glacierxr.models.registry import available, create, get_entry

    if pretrained.is_name(path) and not Path(path).exists():
        path = pretrained.path_of(str(path))
    path = Path(path)
    payload = _read(path, map_location)
    arch = payload["arch"]
    if arch not in available():
        raise UnknownModelError(
            f"{str(path)!r} holds architecture {arch!r}, which this glacierxr does not know "
            f"(available: {', '.join(available())}); upgrade glacierxr or use the version that wrote it"
        )
    try:
        # options newer than the checkpoint take the dataclass default (the architecture it was
        # trained with), not the preset's, which may have changed since
        entry = get_entry(arch)
        config = {f.name: f.default for f in dataclasses.fields(entry.config_cls)
                  if f.default is not dataclasses.MISSING and f.name not in entry.fixed}
        config.update(payload["config"])
        model = create(arch, bands=payload["bands"], preset=payload["preset"],
                       normalization=payload["normalization"], **config)
    except (ModelConfigError, UnknownModelError) as exc:
        raise CheckpointError(f"{str(path)!r}: cannot rebuild {arch!r} from its stored config: {exc}") from exc
    _load_weights(model, payload["state_dict"], path)
    model.provenance = dict(payload["provenance"])
    model.inputs = dict(payload.get("inputs") or {})
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    return model.eval()


def _load_weights(model: GlacierModel, state: dict, path: Path) -> None:
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise CheckpointError(f"{str(path)!r} does not fit {model.arch!r}: parameter {name!r} is missing")
        found = state[name]
        if not isinstance(found, torch.Tensor) or found.shape != tensor.shape:
            shape = tuple(found.shape) if isinstance(found, torch.Tensor) else type(found).__name__
            raise CheckpointError(
                f"{str(path)!r} does not fit {model.arch!r}: parameter {name!r} has shape {shape}, "
                f"the architecture expects {tuple(tensor.shape)}"
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise CheckpointError(f"{str(path)!r} does not fit {model.arch!r}: unexpected parameters {extra[:5]}")
    model.load_state_dict(state, strict=True)


def mlm_item(model: GlacierModel, checkpoint: str | os.PathLike | None = None, *,
             provenance: Mapping[str, Any] | None = None, window_size: int | None = None,
             tile_size: int | None = None) -> dict[str, Any]:
    """A STAC Item (MLM extension v1.4.0) describing ``model``.

    Parameters
    ----------
    model
        The model.
    checkpoint
        Checkpoint path; the Item's ``model`` asset points to it by file name (relative href).
    provenance
        Provenance to report (defaults to the model's); ``created`` becomes the Item's datetime.
    window_size
        Suggested prediction window side in the input shape. Default: ``provenance["window_size"]``
        (or the older ``provenance["tile_size"]``) or 512. Any multiple of
        :attr:`~GlacierModel.output_stride` works; the description says so.
    tile_size
        Deprecated alias of ``window_size`` (emits a :class:`FutureWarning`).

    Returns
    -------
    dict
        The Item as plain JSON types.
    """
    from glacierxr.models.registry import get_entry

    prov = dict(provenance if provenance is not None else getattr(model, "provenance", {}))
    created = prov.get("created") or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")
    if tile_size is not None:
        if window_size is not None:
            raise InvalidArgumentError("mlm_item got both window_size= and its deprecated alias tile_size=; "
                                   "pass only window_size=.")
        warnings.warn("tile_size= is deprecated, use window_size=", FutureWarning, stacklevel=2)
        window_size = tile_size
    window = int(window_size or prov.get("window_size") or prov.get("tile_size") or 512)
    window = max(model.output_stride, math.ceil(window / model.output_stride) * model.output_stride)
    n_params = sum(p.numel() for p in model.parameters())
    n_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    name = Path(checkpoint).name if checkpoint is not None else f"{model.arch}.pt"
    c = len(model.bands)
    description = (
        f"glacierxr {model.arch} ({model.preset} preset): glacier / background segmentation. Input: the bands "
        f"{', '.join(model.bands)} as float32, each z-scored with value_scaling; height and width any multiple of "
        f"{model.output_stride}; recommended window overlap {model.recommended_overlap} px. Output: logits of "
        "(background, glacier); softmax over the class axis gives the glacier probability."
    )
    properties: dict[str, Any] = {
        "datetime": created,
        "description": description,
        "mlm:name": f"glacierxr-{model.arch}-{model.preset}",
        "mlm:architecture": get_entry(model.arch).description or model.arch,
        "mlm:tasks": ["semantic-segmentation"],
        "mlm:framework": "pytorch",
        "mlm:framework_version": str(torch.__version__).split("+")[0],
        "mlm:memory_size": int(n_bytes),
        "mlm:total_parameters": int(n_params),
        "mlm:pretrained": bool(prov.get("pretrained", False)),
        "mlm:accelerator": None,
        "mlm:accelerator_constrained": False,
        "mlm:batch_size_suggestion": 8,
        "mlm:hyperparameters": _plain_json(model.config, "model.config"),
        "mlm:input": [{
            "name": "bands",
            "bands": list(model.bands),
            "input": {"shape": [-1, c, window, window], "dim_order": ["batch", "bands", "height", "width"],
                      "data_type": "float32"},
            "value_scaling": [{"type": "z-score", "mean": m, "stddev": s}
                              for m, s in (model.normalization[b] for b in model.bands)],
            "resize_type": None,
            "pre_processing_function": None,
        }],
        "mlm:output": [{
            "name": "glacier_logits",
            "tasks": ["semantic-segmentation"],
            "result": {"shape": [-1, model.num_classes, window, window],
                       "dim_order": ["batch", "channel", "height", "width"], "data_type": "float32"},
            "classification:classes": [
                {"value": 0, "name": "background", "description": "not glacier"},
                {"value": 1, "name": "glacier", "description": "glacier ice and snow (RGI-style outline interior)"},
            ],
            "post_processing_function": None,
        }],
        "glacierxr:arch": model.arch,
        "glacierxr:preset": model.preset,
        "glacierxr:output_stride": model.output_stride,
        "glacierxr:recommended_overlap": model.recommended_overlap,
        "glacierxr:default_tta": model.default_tta,
        "glacierxr:inputs": _plain_json(getattr(model, "inputs", {}) or {}, "model.inputs"),
        "glacierxr:provenance": _plain_json(prov, "provenance"),
    }
    if model.inputs.get("resolution"):
        properties["description"] += f" Trained at {model.inputs['resolution']:g} m pixels."
    if prov.get("description"):
        properties["description"] += " " + str(prov["description"])
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [MLM_SCHEMA],
        "id": Path(name).stem if checkpoint is not None else f"glacierxr-{model.arch}",
        "geometry": None,
        "properties": properties,
        "links": [],
        "assets": {
            "model": {
                "href": f"./{name}",
                "type": "application/octet-stream; application=pytorch",
                "title": f"glacierxr checkpoint ({model.arch})",
                "mlm:artifact_type": "torch.save",
                "roles": ["mlm:model", "mlm:weights", "data"],
            }
        },
    }
