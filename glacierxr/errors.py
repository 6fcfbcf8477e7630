"""The glacierxr exception hierarchy.

Every error raised on bad user input is a :class:`GlacierxrError`. Each subclass also derives
from the builtin exception a Python user would expect (``ValueError``, ``FileNotFoundError``,
...), so ``except ValueError`` keeps working. Messages say what was wrong *and* what to change.
"""

from __future__ import annotations

__all__ = [
    "GlacierxrError",
    "InvalidArgumentError",
    "InvalidBBoxError",
    "InvalidDatetimeError",
    "UnknownSensorError",
    "StacConnectionError",
    "EmptySearchError",
    "MissingBandError",
    "UnsupportedItemError",
    "CRSError",
    "NoOverlapError",
    "GridError",
    "UnknownModelError",
    "CheckpointError",
    "CheckpointVersionError",
    "CheckpointNotFoundError",
    "ModelConfigError",
    "InputShapeError",
    "ModelInputError",
    "StoreExistsError",
    "InventoryNotFoundError",
    "OutlinesNotFoundError",
    "OptionalDependencyError",
    "ServerError",
    "AssetReadError",
    "GlacierxrWarning",
    "SearchLimitWarning",
    "TrainingFailedWarning",
]


class GlacierxrError(Exception):
    """Base class of every error glacierxr raises on purpose."""


class InvalidArgumentError(GlacierxrError, ValueError):
    """An argument has a value outside what the function accepts."""


class InvalidBBoxError(GlacierxrError, ValueError):
    """A bounding box is malformed, inverted or outside lon/lat limits."""


class InvalidDatetimeError(GlacierxrError, ValueError):
    """A date window cannot be parsed, is empty or is inverted."""


class UnknownSensorError(GlacierxrError, ValueError):
    """A sensor, provider or collection name is not known to :mod:`glacierxr.sensors`."""


class StacConnectionError(GlacierxrError, ConnectionError):
    """A STAC API could not be reached or did not answer like a STAC API."""


class EmptySearchError(GlacierxrError, LookupError):
    """A STAC search returned no item."""


class MissingBandError(GlacierxrError, ValueError):
    """Items or a datacube lack a band that is required."""


class UnsupportedItemError(GlacierxrError, ValueError):
    """A STAC item cannot be placed on a map grid (e.g. Sentinel-1 GRD in radar geometry)."""


class CRSError(GlacierxrError, ValueError):
    """A coordinate reference system is missing or cannot be determined."""


class GridError(GlacierxrError, ValueError):
    """A requested output grid (resolution, chunks, shape) is invalid."""


class UnknownModelError(GlacierxrError, ValueError):
    """A model architecture or preset name is not registered."""


class CheckpointError(GlacierxrError, ValueError):
    """A file is not a glacierxr checkpoint, or does not fit the architecture it names."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No file exists at the checkpoint path."""


class ModelConfigError(GlacierxrError, ValueError):
    """A model option (override, band list or normalisation) is invalid."""


class CheckpointVersionError(CheckpointError):
    """A checkpoint was written by a newer, incompatible format version."""


class InputShapeError(GlacierxrError, ValueError):
    """An input tensor or array has a shape the operation cannot accept."""


class ModelInputError(GlacierxrError, ValueError):
    """A model's inputs (sensor, resolution, value scaling) do not match the cube it is given.

    The message names what the checkpoint expects, what the cube has, and how to match them
    (``resolution=``, other bands, or another model).
    """


class NoOverlapError(CRSError, InvalidArgumentError):
    """Outlines and a raster (a prediction, a DEM) do not overlap: usually a wrong CRS or area.

    One class wherever it happens (evaluate, inventory); it is both a :class:`CRSError` and an
    :class:`InvalidArgumentError`, as the two places raised before.
    """


class InventoryNotFoundError(GlacierxrError, FileNotFoundError):
    """An inventory file to read does not exist."""


class OutlinesNotFoundError(GlacierxrError, FileNotFoundError):
    """A vector file of outlines (reference or training labels) does not exist."""


class StoreExistsError(GlacierxrError, FileExistsError):
    """An output already exists and the call did not ask to overwrite or resume it."""


class OptionalDependencyError(GlacierxrError, ImportError):
    """An optional dependency is needed; the message names the ``pip install`` command."""


class ServerError(GlacierxrError, RuntimeError):
    """A local server (e.g. the STAC API) failed to start or stopped unexpectedly."""


class AssetReadError(GlacierxrError, OSError):
    """A raster asset could not be read, after retrying when the failure looked transient.

    The message names the asset href, the band and item when known, the number of attempts and
    what to do. The attributes ``href``, ``attempts``, ``transient`` (whether the last failure
    looked transient) and ``label`` (e.g. ``"band 'B04' of item 'S2B_...'"``) carry the same facts.
    """

    href: str = ""
    attempts: int = 0
    transient: bool = False
    label: str = ""


class GlacierxrWarning(UserWarning):
    """Base class of every warning glacierxr issues on purpose."""


class SearchLimitWarning(GlacierxrWarning):
    """A STAC search stopped at the caller's ``max_items`` while more items matched.

    The message names the sensor, the collection, the limit and how to lift it
    (``max_items=None`` pages to the end).
    """


class TrainingFailedWarning(GlacierxrWarning):
    """A training run ended with a model that maps (almost) no glacier on its validation chips.

    The message gives the validation F1 and what to change (recipe, learning rate, epochs,
    chip size, or labels that do not cover the imagery). ``glacierxr train`` exits non-zero.
    """
