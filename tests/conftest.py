"""Shared fixtures: seeded synthetic regions, a local STAC API, the real data in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import dask
import pytest

from glacierxr.stac_server import serve
from glacierxr.synthetic import make_region

SHARED_REAL = Path(os.environ.get("GLACIERXR_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "real"


@pytest.fixture(scope="session")
def region(tmp_path_factory):
    """A small seeded region (384 x 384 px at 10 m, three dates) in UTM 45N."""
    return make_region(tmp_path_factory.mktemp("region"), seed=1, shape=(384, 384))


@pytest.fixture(scope="session")
def stac_url(region):
    """A local STAC API serving ``region`` for the whole session."""
    with serve(region.stac_dir) as url:
        yield url


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``../shared/data/real``; tests using it skip cleanly when it is absent."""
    if not SHARED_REAL.is_dir():
        pytest.skip(f"real data not found at {SHARED_REAL}")
    return SHARED_REAL


class ComputeForbidden(RuntimeError):
    pass


def _forbidden(*args, **kwargs):
    raise ComputeForbidden("something was computed")


@pytest.fixture
def no_compute():
    """Inside this fixture any Dask compute raises :class:`ComputeForbidden`."""
    with dask.config.set(scheduler=_forbidden):
        yield
