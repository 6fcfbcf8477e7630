"""The direct read of grid-aligned assets equals stackstac's warped read, pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window
from stackstac.raster_spec import RasterSpec
from stackstac.rio_reader import AutoParallelRioReader

from glacierxr.cube import gdal_env
from glacierxr.reader import AlignedReader

EPSG = 32645
# the output grid: 40 x 36 pixels of 10 m
SPEC = RasterSpec(epsg=EPSG, bounds=(500000, 3099640, 500360, 3100040), resolutions_xy=(10, 10))


def _tif(path, data, transform, nodata=None):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype, crs=f"EPSG:{EPSG}", transform=transform, nodata=nodata) as dst:
        dst.write(data, 1)
    return str(path)


def _readers(url, resampling):
    kw = dict(url=url, spec=SPEC, resampling=resampling, dtype=np.dtype("float32"), fill_value=np.float32(np.nan),
              scale_offset=(1, 0), gdal_env=gdal_env())
    return AlignedReader(**kw), AutoParallelRioReader(**kw)


@pytest.mark.parametrize("k, x0, y0, nodata, dtype", [
    (1, 499990, 3100030, 0, "uint16"),   # source larger than the grid, offset by a pixel
    (1, 500120, 3099900, None, "float32"),  # source inside the grid: the rest stays fill
    (2, 499980, 3100060, 0, "uint16"),   # 20 m pixels on the 10 m lattice, starting off-chunk
    (2, 500090, 3099950, -32768, "int16"),
    (3, 500010, 3100070, 0, "uint16"),   # 30 m (Landsat) onto 10 m, corner one pixel into the grid
])
def test_direct_read_equals_warped_read(tmp_path, k, x0, y0, nodata, dtype):
    rng = np.random.default_rng(k)
    data = rng.integers(0, 50, (23, 29)).astype(dtype)
    if nodata is not None:
        data[rng.random(data.shape) < 0.2] = nodata
    url = _tif(tmp_path / "a.tif", data, Affine(10 * k, 0, x0, 0, -10 * k, y0), nodata)
    resampling = Resampling.nearest
    direct, warped = _readers(url, resampling)
    assert direct._check() is not None  # the direct path is taken
    for window in (Window(0, 0, 36, 40), Window(3, 5, 17, 11), Window(35, 39, 1, 1), Window(1, 0, 20, 40)):
        np.testing.assert_array_equal(direct.read(window), warped.read(window))


def test_internal_mask_keeps_gdals_masked_read(tmp_path):
    data = np.arange(36 * 40, dtype="uint16").reshape(40, 36)
    path = tmp_path / "m.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", driver="GTiff", width=36, height=40, count=1, dtype="uint16",
                           crs=f"EPSG:{EPSG}", transform=Affine(10, 0, 500000, 0, -10, 3100040)) as dst:
            dst.write(data, 1)
            mask = np.full((40, 36), 255, np.uint8)
            mask[:7, :5] = 0
            dst.write_mask(mask)
    direct, warped = _readers(str(path), Resampling.nearest)
    got = direct.read(Window(0, 0, 36, 40))
    assert np.isnan(got[:7, :5]).all() and np.isfinite(got[7:]).all()
    np.testing.assert_array_equal(got, warped.read(Window(0, 0, 36, 40)))
