"""Benchmark the GPU feed: model-only windows/s, predict windows/s, whole-command km²/s, and their ratios.

    python benchmarks/bench_gpu.py [--device auto] [--preset paper] [--window 512] [--batch-size 16]
                                   [--size 4096] [--region 2048] [--workers 1,2] [--peak-tflops 989]
                                   [--compile] [--parts model,predict,command]

(model)   ``lgt-lgcb`` at --preset, one batch of --batch-size windows resident on the device, run
          over and over (bf16 autocast on CUDA, as predict runs it): the model's ceiling in
          windows/s, and (with --peak-tflops, on CUDA) the fraction of the device's bf16 peak its
          FLOPs reach.
(predict) ``cube.glacier.predict`` over a SIZE x SIZE in-memory cube (overlap 64): windows/s and
          its fraction of the model-only rate. Every forward pass goes through the process's
          :class:`glacierxr.inference.Runner` (batches merged across chunks, pinned memory,
          asynchronous copies on CUDA).
(command) ``gx.run_inventory`` end to end (search, cube, predict, outlines, inventory) over a
          synthetic REGION x REGION region served by the local STAC API, with the band ratio and
          with ``lgt-lgcb`` small, on LocalClusters of --workers processes: km²/s, and for the
          learned model the fraction of its model-only km²/s (goal >= 80 %). Each tile is predicted
          with a --margin-km margin, so small regions of small tiles predict more than their area.

It runs on CPU too (``--device cpu``, small sizes) to show the feed works where no GPU is lent;
the figures are then CPU figures. Compare ratios, not seconds: the machines are shared.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

import glacierxr as gx
from glacierxr.tiling import window_starts

BANDS = ["B02", "B03", "B04", "B08", "B11", "NDSI", "elevation"]


def model_only(model, device: str, window: int, batch: int, seconds: float = 5.0) -> float:
    """Windows/s of the bare forward pass (bf16 autocast on CUDA) on a batch already on the device."""
    x = torch.randn(batch, len(model.bands), window, window, device=device)
    use_bf16 = device.startswith("cuda")
    with torch.inference_mode(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        for _ in range(2):
            model(x)
        _sync(device)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            torch.softmax(model(x).float(), 1)[:, 1]
            n += batch
        _sync(device)
    return n / (time.perf_counter() - t0)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def flops_per_window(model, device: str, window: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        model(torch.zeros(1, len(model.bands), window, window, device=device))
    return float(fc.get_total_flops())


def memory_cube(size: int, chunks: int) -> xr.Dataset:
    rng = np.random.default_rng(0)
    data = {b: (("y", "x"), rng.random((size, size), np.float32)) for b in BANDS}
    cube = xr.Dataset(data, coords={"y": 5.0 + 10 * np.arange(size)[::-1], "x": 5.0 + 10 * np.arange(size)})
    return cube.chunk({"y": chunks, "x": chunks})


def command(region_dir: Path, model, workers: int, window: int, out: Path, margin_km: float,
            tile_km: float | None = None) -> float:
    """km²/s of ``gx.run_inventory`` over the served synthetic region."""
    from glacierxr.stac_server import serve

    info = json.loads((region_dir / "region.json").read_text())
    with serve(region_dir / "stac") as url:
        t0 = time.perf_counter()
        manifest = gx.run_inventory(url, bbox=info["bbox"], datetime=info["datetime"], out=out, model=model,
                                    workers=workers, tile_km=tile_km or info["tile_km"], margin_km=margin_km,
                                    window=window, overlap=64,
                                    chunk=1024, overwrite=True, quiet=True, quicklook=False)
        seconds = time.perf_counter() - t0
    return manifest["plan"]["km2"] / seconds


def make_served_region(folder: Path, size: int) -> Path:
    from glacierxr.synthetic import make_region

    if not (folder / "region.json").exists():
        region = make_region(folder, seed=0, shape=(size, size))
        # production tiles that nest in the 100 km pattern, several per region so both workers have work
        tile_km = 5.0 if size <= 2048 else 10.0
        (folder / "region.json").write_text(json.dumps({"bbox": region.bbox, "datetime": region.datetime,
                                                        "tile_km": tile_km}))
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--preset", default="paper")
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--region", type=int, default=2048)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--margin-km", type=float, default=1.0,
                   help="margin predicted around each tile: (tile + 2 margin)^2 / tile^2 more pixels than the region")
    p.add_argument("--tile-km", type=float, default=None,
                   help="production tile size (default: 5 km for regions up to 2048 pixels, else 10 km)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, e.g. 989 (H100/H200 SXM)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (predict and model-only)")
    p.add_argument("--parts", default="model,predict,command")
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()
    parts = set(args.parts.split(","))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"CPU, {torch.get_num_threads()} torch threads"
    print(f"device: {device} ({name}); lgt-lgcb/{args.preset}, window {args.window}, batch {args.batch_size}")
    if not device.startswith("cuda"):
        print("no GPU here: these are CPU figures, proving the feed runs; the GPU figures need a GPU")
    torch.manual_seed(0)
    model = gx.models.create("lgt-lgcb", bands=BANDS, preset=args.preset).eval().to(device)
    result: dict = {"device": device, "device_name": name, "preset": args.preset, "window": args.window}
    stride = args.window - 64
    km2_per_window = stride * stride * 100 / 1e6  # 10 m pixels; each window adds stride^2 new pixels

    forward = torch.compile(model) if args.compile else model
    rate = model_only(forward, device, args.window, args.batch_size)
    result["model_windows_s"] = rate
    print(f"(model)   {rate:8.2f} windows/s  = {rate * km2_per_window:8.1f} km²/s at overlap 64")
    if device.startswith("cuda") and args.peak_tflops:
        tflops = flops_per_window(model, device, args.window) * rate / 1e12
        result["fraction_of_bf16_peak"] = tflops / args.peak_tflops
        print(f"          {tflops:.1f} TFLOP/s = {tflops / args.peak_tflops:.1%} of the bf16 peak")

    if "predict" in parts:
        cube = memory_cube(args.size, chunks=2048).persist()
        kw = dict(window=args.window, overlap=64, batch_size=args.batch_size, device=device, compile=args.compile)
        cube.glacier.predict(model, **kw).values  # warm-up (and compilation)
        t0 = time.perf_counter()
        cube.glacier.predict(model, **kw).values
        seconds = time.perf_counter() - t0
        windows = len(window_starts(args.size, args.window, stride)) ** 2
        result["predict_windows_s"] = windows / seconds
        print(f"(predict) {windows / seconds:8.2f} windows/s  = {windows / seconds / rate:6.1%} of model-only")

    if "command" in parts:
        workdir = args.workdir or Path(tempfile.gettempdir()) / f"glacierxr-gpu-region-{args.region}"
        region_dir = make_served_region(workdir, args.region)
        small = gx.models.create("lgt-lgcb", bands=BANDS, preset="small").eval()
        small_rate = model_only(small.to(device), device, args.window, args.batch_size, seconds=3.0)
        small_km2_s = small_rate * km2_per_window
        with tempfile.TemporaryDirectory() as tmp:
            for label, m in (("band-ratio", "band-ratio"), ("lgt-lgcb small", small)):
                for workers in map(int, args.workers.split(",")):
                    km2_s = command(region_dir, m, workers, args.window, Path(tmp) / "run", args.margin_km, args.tile_km)
                    line = f"(command) {label:15s} {workers} worker(s): {km2_s:8.2f} km²/s"
                    if m is small:
                        line += f"  = {km2_s / small_km2_s:6.1%} of its model-only {small_km2_s:.1f} km²/s"
                    result[f"command_{label.replace(' ', '_')}_{workers}w_km2_s"] = km2_s
                    print(line, flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
