"""The bad-input matrix: every public entry point and the CLI, each wrong input once.

Each case asserts that

(a) the specific :class:`~glacierxr.errors.GlacierxrError` subclass is raised,
(b) its message names what was wrong and says what to change,
(c) on the command line: exit code 2, the message printed as ``error: ...`` and no traceback,
(d) nothing in an existing workspace (an earlier run folder with its Zarr store, outlines,
    checkpoints) is created, modified or removed: inputs are validated before anything is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pytest
import torch
import xarray as xr
from click.testing import CliRunner

import glacierxr as gx
from glacierxr.cli import as_flags, main
from glacierxr.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointVersionError,
    CRSError,
    EmptySearchError,
    GlacierxrError,
    GridError,
    InputShapeError,
    InvalidArgumentError,
    InvalidBBoxError,
    InvalidDatetimeError,
    InventoryNotFoundError,
    MissingBandError,
    NoOverlapError,
    OutlinesNotFoundError,
    StacConnectionError,
    StoreExistsError,
    UnknownModelError,
    UnknownSensorError,
)
from glacierxr.predict import predict
from glacierxr.stac_server import serve

EXE = str(Path(sys.executable).with_name("glacierxr"))
BANDS = ["B03", "B04", "B08", "B11"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _without_swir(src: Path, dst: Path) -> Path:
    """A copy of a region's STAC folder whose Sentinel-2 items lack the ``swir16`` (B11) asset."""
    shutil.copytree(src, dst)
    path = dst / "sentinel-2-l2a" / "items.ndjson"
    items = [json.loads(line) for line in path.read_text().splitlines()]
    for item in items:
        item["assets"].pop("swir16")
    path.write_text("".join(json.dumps(it) + "\n" for it in items))
    return dst


@pytest.fixture(scope="module")
def ctx(region, stac_url, tmp_path_factory):
    """Everything the cases need, made once: a cube, a probability, a DEM, outlines, models,
    a served STAC without a band, a dead URL, and a template workspace holding an earlier run."""
    root = tmp_path_factory.mktemp("bad-inputs")
    items = gx.search(stac_url, bbox=region.bbox, datetime=region.datetime, sensors=("sentinel-2", "dem"))
    cube = gx.open_cube(items, bbox=region.bbox, chunks=128)
    band_ratio = gx.models.create("band-ratio", bands=BANDS)
    prob = cube.glacier.predict(band_ratio, window=128, overlap=32).compute()
    dem = cube["elevation"].compute()
    outlines = prob.glacier.outlines(min_area_km2=0)
    assert len(outlines) and prob.rio.crs is not None and dem.rio.crs is not None

    # the template workspace: an earlier run folder, checkpoints; copied afresh for every case
    template = root / "template"
    run = template / "run"
    run.mkdir(parents=True)
    prob.glacier.to_zarr(run / "probability.zarr")
    gx.write_inventory(outlines, run / "outlines.parquet")
    (run / "run.json").write_text(json.dumps({"stac": stac_url, "tile": 256, "overlap": 64}, indent=1))
    (run / "inventory.csv").write_text("glac_id,area_km2\nG086900E27950N,0.5\n")
    (run / "manifest.json").write_text("{}")
    other = template / "not-a-run"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    models = template / "models"
    unet = gx.models.create("unet", preset="tiny", bands=BANDS)
    gx.models.save(unet, models / "unet.pt")
    (models / "corrupt.pt").write_bytes(b"\x00garbage, not a checkpoint\xff" * 64)
    payload = torch.load(models / "unet.pt", weights_only=True)
    payload["format_version"] += 1
    torch.save(payload, models / "newer.pt")

    with contextlib.ExitStack() as stack:
        no_swir_url = stack.enter_context(serve(_without_swir(region.stac_dir, root / "stac-no-swir")))
        yield SimpleNamespace(
            region=region, url=stac_url, no_swir_url=no_swir_url, dead_url=f"http://127.0.0.1:{_free_port()}",
            bbox=tuple(region.bbox), dt=region.datetime, cube=cube, prob=prob, dem=dem, outlines=outlines,
            unet=unet, template=template,
        )


@pytest.fixture
def ws(ctx, tmp_path):
    """A fresh copy of the template workspace (earlier run folder + checkpoints) for one case."""
    return Path(shutil.copytree(ctx.template, tmp_path / "ws"))


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every file and folder under ``folder``: kind, size, mtime and SHA-256 of the contents."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_dir():
            out[rel] = ("dir",)
        else:
            st = p.stat()
            out[rel] = ("file", st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def no_crs(a: xr.DataArray) -> xr.DataArray:
    """The same pixels and x/y coordinates, without any CRS information."""
    return xr.DataArray(np.asarray(a.values), dims=("y", "x"), coords={"y": a.y.values, "x": a.x.values})


@dataclass(frozen=True)
class Case:
    id: str
    call: object  # (ctx, ws) -> None for API cases; (ctx, ws) -> list[str] of CLI arguments
    error: type[GlacierxrError]
    match: str  # a regex the message must contain: the offending value and what to change


# ----------------------------------------------------------------------------- public API


def _search(c, **kw):
    args = dict(bbox=c.bbox, datetime=c.dt, sensors=("sentinel-2",))
    args.update(kw)
    return gx.search(args.pop("url", c.url), **args)


def _predict(c, **kw):
    args = dict(window=128, overlap=32)
    args.update(kw)
    return c.cube.glacier.predict(args.pop("model", c.unet), **args)


def _open_without_swir(c):
    items = gx.search(c.no_swir_url, bbox=c.bbox, datetime=c.dt, sensors=("sentinel-2",))
    gx.open_cube(items, bbox=c.bbox)


def _far_outlines_frame(c):
    far = c.outlines.copy()
    far["geometry"] = far.geometry.translate(1_000_000, 0)
    return far


def _far_outlines(c):
    gx.inventory(_far_outlines_frame(c), c.dem)


def _outlines_without_crs(c):
    gx.inventory(c.outlines.set_crs(None, allow_override=True), c.dem)


def _store_with_other_array(c, ws):
    other = c.prob.copy()
    other.attrs = {**c.prob.attrs, "window": 256}
    other.glacier.to_zarr(ws / "run" / "probability.zarr")


API = [
    Case("bbox-three-values", lambda c, ws: _search(c, bbox=(86.9, 27.9, 87.0)), InvalidBBoxError,
         r"has 3 values; pass exactly four: \(west, south, east, north\)"),
    Case("bbox-longitude-out-of-range", lambda c, ws: _search(c, bbox=(200.0, 27.9, 201.0, 28.0)), InvalidBBoxError,
         r"longitudes \(200.0, 201.0\) must lie in \[-180, 180\].*Pass \(west, south, east, north\) in degrees"),
    Case("bbox-projected-metres", lambda c, ws: _search(c, bbox=(491450, 3094290, 495290, 3098130)), InvalidBBoxError,
         r"longitudes .* must lie in \[-180, 180\]; is the box in projected metres"),
    Case("bbox-latitude-out-of-range", lambda c, ws: _search(c, bbox=(86.9, -95.0, 87.0, 28.0)), InvalidBBoxError,
         r"latitudes \(-95.0, 28.0\) must lie in \[-90, 90\]"),
    Case("bbox-west-after-east", lambda c, ws: _search(c, bbox=(87.0, 27.9, 86.9, 28.0)), InvalidBBoxError,
         r"west \(87.0\) must be smaller than east \(86.9\).*split them"),
    Case("bbox-zero-area", lambda c, ws: _search(c, bbox=(86.9, 27.9, 86.9, 28.0)), InvalidBBoxError,
         r"\(86.9, 27.9, 86.9, 28.0\) has zero area.*give the region a width and a height"),
    Case("bbox-nan", lambda c, ws: _search(c, bbox=(86.9, 27.9, float("nan"), 28.0)), InvalidBBoxError,
         r"contains NaN or infinity; pass finite degrees"),
    Case("datetime-empty", lambda c, ws: _search(c, datetime=""), InvalidDatetimeError,
         r"datetime='' is empty; pass a window such as '2023-07-15/2023-09-30'"),
    Case("datetime-inverted", lambda c, ws: _search(c, datetime="2023-09-30/2023-07-01"), InvalidDatetimeError,
         r"ends \(2023-07-01\) before it starts \(2023-09-30\); swap the dates"),
    Case("unknown-sensor", lambda c, ws: _search(c, sensors=("modis",)), UnknownSensorError,
         r"Unknown sensor 'modis'; known sensors: .*sentinel-2.*Register others"),
    Case("unreachable-url", lambda c, ws: _search(c, url=c.dead_url), StacConnectionError,
         r"Could not open the STAC API at 'http://127\.0\.0\.1:\d+'.*Check the URL"),
    Case("empty-search-elsewhere", lambda c, ws: _search(c, bbox=(10.0, 46.0, 10.1, 46.1)), EmptySearchError,
         r"No sentinel-2 item found in collection 'sentinel-2-l2a'.*bbox=\[10.0, 46.0, 10.1, 46.1\].*Widen the dates"),
    Case("empty-search-lat-lon-swapped", lambda c, ws: _search(c, bbox=(c.bbox[1], c.bbox[0], c.bbox[3], c.bbox[2])),
         EmptySearchError, r"longitude first; if yours is in \(lat, lon\) order, pass \(86\.9"),
    Case("items-without-a-band", lambda c, ws: _open_without_swir(c), MissingBandError,
         r"no asset for band 'B11'.*swir16"),
    Case("open-cube-chunks-zero", lambda c, ws: gx.open_cube([], bbox=c.bbox, chunks=0), GridError,
         r"chunks=0 must be a positive number of pixels, e.g. 2048"),
    Case("model-bands-missing-from-cube",
         lambda c, ws: _predict(c, model=gx.models.create("unet", preset="tiny", bands=["B03", "VV"])),
         MissingBandError, r"lacks band\(s\) \['VV'\].*Add the sensor to the search, or create the model with bands="),
    Case("window-not-a-multiple-of-stride", lambda c, ws: _predict(c, window=100), InputShapeError,
         r"window=100 must be a positive multiple of the model's output stride 16; use window=96 or window=112"),
    Case("overlap-too-large", lambda c, ws: _predict(c, overlap=96), InputShapeError,
         r"overlap=96 must be a whole number of pixels between 0 and half the window \(64\)"),
    Case("overlap-negative", lambda c, ws: _predict(c, overlap=-8), InputShapeError, r"overlap=-8 must be .* between 0"),
    Case("predict-chunks-zero", lambda c, ws: _predict(c, chunks=0), GridError,
         r"chunks=0 must be a positive number of pixels \(e.g. 2048\)"),
    Case("predict-chunks-negative", lambda c, ws: _predict(c, chunks=-256), GridError,
         r"chunks=-256 must be a positive number of pixels"),
    Case("predict-on-a-dataarray", lambda c, ws: predict(c.cube["B03"], c.unet), InvalidArgumentError,
         r"predict needs an xarray.Dataset with one variable per band.*got a DataArray.*to_dataset"),
    Case("predict-unknown-model-name", lambda c, ws: _predict(c, model="foo-net"), UnknownModelError,
         r"model='foo-net' is neither a checkpoint file nor a known model"),  # the one rule of models.resolve
    Case("create-unknown-model", lambda c, ws: gx.models.create("foo-net", bands=BANDS), UnknownModelError,
         r"unknown model 'foo-net'; available: .*band-ratio"),
    Case("create-unknown-preset", lambda c, ws: gx.models.create("unet", preset="huge", bands=BANDS),
         UnknownModelError, r"unknown preset 'huge' for 'unet'; available: paper, small, tiny"),
    Case("checkpoint-corrupt", lambda c, ws: gx.models.load(ws / "models" / "corrupt.pt"), CheckpointError,
         r"corrupt\.pt' is not a glacierxr checkpoint.*Pass a file written by glacierxr\.models\.save"),
    Case("checkpoint-corrupt-in-predict", lambda c, ws: _predict(c, model=str(ws / "models" / "corrupt.pt")),
         CheckpointError, r"is not a glacierxr checkpoint.*glacierxr\.models\.save"),
    Case("checkpoint-newer-version", lambda c, ws: gx.models.load(ws / "models" / "newer.pt"), CheckpointVersionError,
         r"format version 2, written by a newer glacierxr \(this one reads up to 1\); upgrade with pip install -U"),
    Case("checkpoint-missing", lambda c, ws: gx.models.load(ws / "models" / "nope.pt"), CheckpointNotFoundError,
         r"no checkpoint at '.*nope\.pt'; check the path"),
    Case("store-exists-complete", lambda c, ws: c.prob.glacier.to_zarr(ws / "run" / "probability.zarr"),
         StoreExistsError, r"probability\.zarr is already complete; pass mode='w'"),
    Case("store-exists-other-array", _store_with_other_array, StoreExistsError,
         r"holds a different array .*pass mode='w' to overwrite it, or choose another path"),
    Case("store-batch-zero", lambda c, ws: gx.to_zarr(c.prob, ws / "run" / "new.zarr", batch=0), InvalidArgumentError,
         r"batch=0 must be a positive number of chunks"),
    Case("write-inventory-exists", lambda c, ws: gx.write_inventory(c.outlines, ws / "run" / "outlines.parquet"),
         StoreExistsError, r"outlines\.parquet exists; pass overwrite=True"),
    Case("read-inventory-missing", lambda c, ws: gx.read_inventory(ws / "run" / "nope.gpkg"), InventoryNotFoundError,
         r"No inventory at .*nope\.gpkg; check the path"),
    Case("outlines-without-crs", lambda c, ws: no_crs(c.prob).glacier.outlines(), CRSError,
         r"raster has no CRS.*rio\.write_crs\('EPSG:xxxx'\)"),
    Case("outlines-not-2d", lambda c, ws: c.prob.expand_dims(band=2).glacier.outlines(), InvalidArgumentError,
         r"needs a 2-D \(y, x\) raster; this one has dims \('band', 'y', 'x'\)"),
    Case("outlines-nan-threshold", lambda c, ws: c.prob.glacier.outlines(threshold=float("nan")),
         InvalidArgumentError, r"threshold=nan must be a finite number \(e.g. 0.5\)"),
    Case("outlines-negative-min-area", lambda c, ws: c.prob.glacier.outlines(min_area_km2=-1),
         InvalidArgumentError, r"min_area_km2=-1 must be a non-negative number of km²"),
    Case("inventory-dem-without-crs", lambda c, ws: gx.inventory(c.outlines, no_crs(c.dem)), CRSError,
         r"dem has no CRS.*dem\.rio\.write_crs\('EPSG:xxxx'\)"),
    Case("inventory-outlines-without-crs", lambda c, ws: _outlines_without_crs(c), CRSError,
         r"outlines have no CRS; set it with outlines\.set_crs"),
    Case("inventory-no-overlap", lambda c, ws: _far_outlines(c), NoOverlapError,
         r"outlines and the DEM do not overlap.*Pass a DEM that covers the glaciers"),
    Case("evaluate-no-overlap", lambda c, ws: gx.evaluate(c.prob, _far_outlines_frame(c)), NoOverlapError,
         r"No reference outline overlaps the prediction"),
    Case("evaluate-reference-file-missing", lambda c, ws: gx.evaluate(c.prob, ws / "nope.gpkg"), OutlinesNotFoundError,
         r"reference outlines file '.*nope\.gpkg' does not exist; check the path"),
    Case("evaluate-without-crs", lambda c, ws: gx.evaluate(no_crs(c.prob), gpd.read_file(c.region.truth_path)),
         CRSError, r"prediction has no CRS.*write_crs"),
    Case("evaluate-nan-threshold", lambda c, ws: gx.evaluate(c.prob, c.outlines, threshold=float("nan")),
         InvalidArgumentError, r"threshold=nan must be a number in \[0, 1\]"),
]


@pytest.mark.parametrize("case", API, ids=[c.id for c in API])
def test_api_bad_input(ctx, ws, case):
    before = snapshot(ws)
    with pytest.raises(case.error) as info:
        case.call(ctx, ws)
    assert type(info.value) is case.error, f"{type(info.value).__name__} is not exactly {case.error.__name__}"
    assert re.search(case.match, str(info.value), re.S), str(info.value)
    assert snapshot(ws) == before, "an existing output was created, modified or removed"


# ----------------------------------------------------------------------------- command line


def _inventory_args(c, ws, *extra, stac=None, out="new-run", bbox=None, **opts) -> list[str]:
    """``glacierxr inventory`` with valid small-region defaults, overridden by ``opts``."""
    values = {"--stac": stac or c.url, "--datetime": c.dt, "--out": str(ws / out), "--chunk": "128", "--window": "128",
              "--overlap": "32", "--min-area": "0.01"}
    values.update({f"--{k.replace('_', '-')}": str(v) for k, v in opts.items()})
    args = ["inventory", "--bbox", *map(str, bbox or c.bbox), "--quiet"]
    for k, v in values.items():
        args.append(f"{k}={v}")  # `=`: negative values are values, not options
    return [*args, *extra]


CLI = [
    Case("cli-bbox-west-after-east", lambda c, ws: _inventory_args(c, ws, bbox=(87.0, 27.9, 86.9, 28.0)),
         InvalidBBoxError, r"west \(87.0\) must be smaller than east \(86.9\)"),
    Case("cli-bbox-latitude", lambda c, ws: _inventory_args(c, ws, bbox=(86.9, 27.9, 87.0, 95.0)),
         InvalidBBoxError, r"latitudes \(27.9, 95.0\) must lie in \[-90, 90\]"),
    Case("cli-datetime-inverted", lambda c, ws: _inventory_args(c, ws, datetime="2023-09-30/2023-07-01"),
         InvalidDatetimeError, r"before it starts \(2023-09-30\); swap the dates"),
    Case("cli-datetime-garbage", lambda c, ws: _inventory_args(c, ws, datetime="last summer"),
         InvalidDatetimeError, r"Cannot read 'last summer' .* use ISO dates like 2023-07-15"),
    Case("cli-unreachable-url", lambda c, ws: _inventory_args(c, ws, stac=c.dead_url), StacConnectionError,
         r"Could not open the STAC API at 'http://127\.0\.0\.1:\d+'.*glacierxr stac serve DIR"),
    Case("cli-empty-search-overwrite", lambda c, ws: _inventory_args(c, ws, "--overwrite", out="run",
                                                                     bbox=(10.0, 46.0, 10.1, 46.1)),
         EmptySearchError, r"No sentinel-2 item found.*Widen the dates or the box"),
    Case("cli-items-without-a-band-overwrite",
         lambda c, ws: _inventory_args(c, ws, "--overwrite", out="run", stac=c.no_swir_url),
         MissingBandError, r"no asset for band 'B11'.*swir16"),
    Case("cli-window-not-a-multiple", lambda c, ws: _inventory_args(c, ws, "--overwrite", out="run", window=100,

                                                                  model=ws / "models" / "unet.pt"),
         InputShapeError,
         r"--window 100 must be a positive multiple of the model's output stride 16; use --window 96 or --window 112"),
    Case("cli-overlap-too-large", lambda c, ws: _inventory_args(c, ws, overlap=100), InputShapeError,
         r"--overlap 100 must be a whole number of pixels between 0 and half the window \(64\)"),

    Case("cli-chunk-zero", lambda c, ws: _inventory_args(c, ws, "--overwrite", out="run", chunk=0), GridError,
         r"--chunk 0 must be a positive number of pixels"),
    Case("cli-chunk-negative", lambda c, ws: _inventory_args(c, ws, chunk=-256), GridError,
         r"--chunk -256 must be a positive number of pixels"),
    Case("cli-unknown-model", lambda c, ws: _inventory_args(c, ws, model="foo-net"), UnknownModelError,
         r"--model 'foo-net' is neither a checkpoint file nor a known model; pass a shipped checkpoint \(lgt-lgcb"),
    Case("cli-untrained-architecture", lambda c, ws: _inventory_args(c, ws, model="unet"), InvalidArgumentError,
         r"--model 'unet': a learned architecture needs trained weights; pass a shipped checkpoint \(lgt-lgcb"),
    Case("cli-checkpoint-missing", lambda c, ws: _inventory_args(c, ws, model=ws / "models" / "nope.pt"),
         CheckpointNotFoundError, r"no checkpoint at '.*nope\.pt'; check the path"),
    Case("cli-checkpoint-corrupt", lambda c, ws: _inventory_args(c, ws, "--overwrite", out="run",
                                                                 model=ws / "models" / "corrupt.pt"),
         CheckpointError, r"corrupt\.pt' is not a glacierxr checkpoint.*glacierxr\.models\.save"),
    Case("cli-checkpoint-newer", lambda c, ws: _inventory_args(c, ws, model=ws / "models" / "newer.pt"),
         CheckpointVersionError, r"written by a newer glacierxr.*pip install -U glacierxr"),
    Case("cli-out-exists-without-resume", lambda c, ws: _inventory_args(c, ws, out="run"), StoreExistsError,
         r"run already exists and is not empty; pass --resume to finish the run in it, --overwrite to replace it, "
         r"or choose another out folder"),
    Case("cli-resume-with-other-parameters", lambda c, ws: _inventory_args(c, ws, "--resume", out="run"),
         InvalidArgumentError, r"holds a run with other parameters \(.*tile.*\); resume it with the same parameters"),
    Case("cli-resume-a-folder-without-a-run", lambda c, ws: _inventory_args(c, ws, "--resume", out="not-a-run"),
         StoreExistsError, r"not-a-run holds no glacierxr run to resume; choose another folder or pass overwrite"),
    Case("cli-resume-and-overwrite", lambda c, ws: _inventory_args(c, ws, "--resume", "--overwrite", out="run"),
         InvalidArgumentError, r"Pass either resume or overwrite, not both"),
    Case("cli-workers-zero", lambda c, ws: _inventory_args(c, ws, "--overwrite", out="run", workers=0),
         InvalidArgumentError, r"--workers 0 must be at least 1"),
    Case("cli-max-cloud-over-100", lambda c, ws: _inventory_args(c, ws, max_cloud=150), InvalidArgumentError,
         r"--max-cloud 150.0 must be a percentage in \[0, 100\]"),
    Case("cli-min-area-negative", lambda c, ws: _inventory_args(c, ws, "--overwrite", out="run", min_area=-1),
         InvalidArgumentError, r"--min-area -1.0 must be a non-negative area in km²"),
    Case("cli-min-area-nan", lambda c, ws: _inventory_args(c, ws, min_area="nan"), InvalidArgumentError,
         r"--min-area nan must be a non-negative area"),
    Case("cli-max-in-flight-zero", lambda c, ws: _inventory_args(c, ws, "--overwrite", out="run", max_in_flight=0),
         InvalidArgumentError, r"--max-in-flight 0 must be a positive number of tiles"),
    Case("cli-tile-km-not-nesting", lambda c, ws: _inventory_args(c, ws, "--overwrite", out="run", tile_km=30),
         InvalidArgumentError, r"--tile-km 30.0 does not divide the 100 km pattern"),
    Case("cli-bbox-and-aoi", lambda c, ws: [*_inventory_args(c, ws), "--aoi", str(ws / "aoi.gpkg")],
         InvalidArgumentError, r"either --bbox W S E N or --aoi FILE"),
    Case("cli-synth-odd-size", lambda c, ws: ["synth", str(ws / "synth"), "--size", "101"], GridError,
         r"shape=\(101, 101\) must be two even sizes of at least 64 pixels, e.g. \(1024, 1024\)"),
]


class _RecordingSys:
    """Stands in for ``sys`` in :mod:`glacierxr.cli`: ``exit`` records the exception being handled."""

    def __init__(self) -> None:
        self.handled: list[BaseException | None] = []

    def exit(self, code=0):
        self.handled.append(sys.exc_info()[1])
        sys.exit(code)

    def __getattr__(self, name):
        return getattr(sys, name)


@pytest.mark.parametrize("case", CLI, ids=[c.id for c in CLI])
def test_cli_bad_input(ctx, ws, case, monkeypatch):
    args = case.call(ctx, ws)
    before = snapshot(ws)
    recorder = _RecordingSys()
    monkeypatch.setattr("glacierxr.cli.sys", recorder)
    result = CliRunner().invoke(main, args)
    # the group turns the GlacierxrError into `error: ...` + exit 2 (it calls sys.exit while handling it)
    assert isinstance(result.exception, SystemExit), f"unexpected {result.exception!r}\n{result.output}"
    assert result.exit_code == 2
    assert len(recorder.handled) == 1, result.output
    cause = recorder.handled[0]
    assert type(cause) is case.error, f"{type(cause).__name__}: {cause}"
    assert result.output.startswith("error: ") or "\nerror: " in result.output, result.output
    assert f"error: {as_flags(str(cause), main.get_command(None, args[0]))}" in result.output  # flags, not parameters
    assert re.search(case.match, result.output, re.S), result.output
    assert "Traceback" not in result.output
    assert snapshot(ws) == before, "an existing output was created, modified or removed"


def test_cli_subprocess_prints_one_line_without_traceback(ctx, ws):
    """The installed entry point, for real: stderr has the message and no traceback, stdout is empty."""
    before = snapshot(ws)
    proc = subprocess.run([EXE, *_inventory_args(ctx, ws, "--overwrite", out="run", model="foo-net")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --model 'foo-net' is neither a checkpoint file nor a known model")
    assert "Traceback" not in proc.stderr + proc.stdout
    assert snapshot(ws) == before


def test_nan_only_inputs_give_empty_results_not_errors(ctx, ws):
    """All-NaN data is valid input (a region without data): documented empty/NaN results, no error."""
    before = snapshot(ws)
    nan_cube = ctx.cube.isel(y=slice(0, 128), x=slice(0, 128))
    nan_cube = nan_cube.map(lambda v: xr.full_like(v, np.nan))
    prob = nan_cube.glacier.predict(gx.models.create("band-ratio", bands=BANDS), window=64, overlap=16).values

    assert np.isnan(prob).all()
    empty = xr.full_like(ctx.prob, np.nan).glacier.outlines(min_area_km2=0)
    assert len(empty) == 0 and {"geometry", "area_km2", "mean_probability"} <= set(empty.columns)
    inv = gx.inventory(ctx.outlines, xr.full_like(ctx.dem, np.nan))
    assert len(inv) == len(ctx.outlines) and (inv["valid_dem_frac"] == 0).all() and inv["zmed_m"].isna().all()
    assert snapshot(ws) == before


def test_matrix_is_large_and_every_error_is_a_glacierxr_error():
    cases = API + CLI
    assert len(cases) >= 25 and len({c.id for c in cases}) == len(cases)
    assert all(issubclass(c.error, GlacierxrError) for c in cases)
