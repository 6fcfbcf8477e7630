"""The real Everest Landsat 7 scene (RGB + B4, 8-bit, 30 m) read by band configuration alone:
a sensor spec naming bands of the RGB asset and an item made from the files give a cube equal
to the files, and the RGI 6 outlines label it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

pytestmark = pytest.mark.real

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_everest_cube_equals_the_files_and_rgi_labels_it(real_data):
    from experiment_everest import SCENE, everest_cube, halves

    from glacierxr.training import rasterize_labels

    folder = real_data / "everest_landsat7"
    cube, outlines = everest_cube(folder)
    with rasterio.open(folder / f"{SCENE}_RGB.tif") as src:
        rgb = src.read()
    with rasterio.open(folder / f"{SCENE}_B4.tif") as src:
        nir = src.read(1)
    assert cube.sizes == {"y": rgb.shape[1], "x": rgb.shape[2]} and cube.rio.crs.to_epsg() == 32645
    for name, want in (("B04", rgb[0]), ("B03", rgb[1]), ("B02", rgb[2]), ("B08", nir)):
        np.testing.assert_allclose(cube[name].values, want / 255, rtol=1e-6)
    labels = rasterize_labels(outlines, cube["B04"]).values
    assert 0.3 < labels.mean() < 0.7  # a heavily glacierised scene around Everest
    train, test = halves(cube, swap=False)
    assert train.sizes["x"] % 64 == 0 and train.sizes["x"] + test.sizes["x"] == cube.sizes["x"]
    assert float(train.x.max()) < float(test.x.min())  # disjoint halves: west trains, east tests
