"""Benchmark ``cube.glacier.predict``: machinery overhead, overlap cost, scaling, schedulers.

    python benchmarks/bench_predict.py [--preset small] [--size 4096] [--parts a,b,c,d] [--device auto]

(a) overhead: time(predict) / time(the same model over the same windows in a plain batched torch
    loop with the same blending), at each of --windows x --overlaps, on a SIZE x SIZE cube held in
    memory. Target <= 1.05. The model's time dominates both and the machine's noise with it, so it
    also times both with a free forward pass (the host work alone: stacking, normalising, blending).
(b) overlap cost: time at overlap 0 / 32 / 64 / 128 as a ratio to overlap 0.
(c) scaling: SIZE/2 vs SIZE squared, each in a fresh process writing Zarr from a lazily
    generated cube: time ratio (target <= 4.4 for 4x the pixels) and peak RSS ratio (<= 1.3).
(d) dask.distributed LocalCluster(2 workers x 1 thread) vs the threaded scheduler.

Ratios, not absolute seconds, are what to compare: the machines are shared and noisy. Mpx/s and
km^2/s (10 m pixels) are printed for scale. With a GPU (``--device cuda``) it also prints windows/s
and the fraction of the GPU's bf16 peak that the model's FLOPs reach (``--peak-tflops``).
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr

import glacierxr as gx
from glacierxr.tiling import blend_weights, window_starts

BANDS = ["B02", "B03", "B04", "B08", "B11", "NDSI", "elevation"]


def lazy_cube(size: int, chunks: int = 2048, seed: int = 0) -> xr.Dataset:
    """A cube generated chunk by chunk (nothing held in memory until computed)."""
    rs = da.random.RandomState(seed)
    data = {b: (("y", "x"), rs.random_sample((size, size), chunks=chunks).astype(np.float32)) for b in BANDS}
    return xr.Dataset(data, coords={"y": 5.0 + 10 * np.arange(size)[::-1], "x": 5.0 + 10 * np.arange(size)})


def plain_loop(cube: xr.Dataset, model, window: int, batch_size: int, device: str, overlap: int = 0) -> float:
    """The same windows through the same model in a plain batched torch loop, with the same blending.

    Everything in memory, no Dask, no chunks: normalise, pad, run the global windows in batches,
    overlap-add ``weight * p`` and ``weight`` (plain assignment when ``overlap == 0``), divide.
    """
    t0 = time.perf_counter()
    x = np.stack([cube[b].values for b in model.bands]).astype(np.float32, copy=False)
    stats = np.array([model.normalization[b] for b in model.bands], np.float32)
    x -= stats[:, 0, None, None]
    x /= stats[:, 1, None, None]
    np.nan_to_num(x, copy=False)
    h, w = x.shape[1:]
    stride = window - overlap
    starts_y, starts_x = window_starts(h, window, stride), window_starts(w, window, stride)
    padded = x
    if (starts_y[-1] + window, starts_x[-1] + window) != (h, w):
        padded = np.zeros((x.shape[0], starts_y[-1] + window, starts_x[-1] + window), np.float32)
        padded[:, :h, :w] = x
    num = np.zeros(padded.shape[1:], np.float32)
    den = np.zeros(padded.shape[1:], np.float32) if overlap else None
    weight = blend_weights(window, overlap)
    origins = [(y, x0) for y in starts_y for x0 in starts_x]
    with torch.inference_mode():
        for i in range(0, len(origins), batch_size):
            batch = origins[i : i + batch_size]
            t = torch.from_numpy(np.stack([padded[:, y : y + window, x0 : x0 + window] for y, x0 in batch])).to(device)
            p = torch.softmax(model(t), 1)[:, 1].cpu().numpy()
            for (y, x0), pi in zip(batch, p, strict=True):
                if overlap:
                    num[y : y + window, x0 : x0 + window] += weight * pi
                    den[y : y + window, x0 : x0 + window] += weight
                else:
                    num[y : y + window, x0 : x0 + window] = pi
    _ = num[:h, :w] / den[:h, :w] if overlap else num[:h, :w]
    return time.perf_counter() - t0


def host_seconds(cube: xr.Dataset, model, batch_size: int, device: str, window: int, overlap: int,
                 repeat: int = 7) -> tuple[float, float]:
    """Median seconds of the raw loop and of predict with a free forward pass (zeros): the host work alone.

    The model's time is the same in both and is what makes the wall-clock ratio noisy; the last
    column, (raw - host raw + host predict) / raw, is the ratio the host work alone implies.
    """
    free = copy.deepcopy(model)
    with torch.no_grad():  # other weights, another token: predict caches models by their content
        next(free.parameters()).add_(1.0)
    free.forward = lambda x: torch.zeros(x.shape[0], 2, *x.shape[2:], device=x.device)
    kw = dict(window=window, overlap=overlap, device=device, batch_size=batch_size)
    cube.glacier.predict(free, **kw).values
    raw, pred = [], []
    for i in range(repeat):
        pair = [(raw, lambda: plain_loop(cube, free, window, batch_size, device, overlap=overlap)),
                (pred, lambda: cube.glacier.predict(free, **kw).values)]
        for times, fn in pair[:: 1 if i % 2 == 0 else -1]:
            times.append(_clocked(fn)[0])
    return statistics.median(raw), statistics.median(pred)


def _clocked(fn) -> tuple[float, float]:
    """Wall and process CPU seconds (every thread) of ``fn()``."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def rate(seconds: float, size: int) -> str:
    mpx = size * size / 1e6
    return f"{mpx / seconds:6.2f} Mpx/s  {mpx * 100 / seconds:7.1f} km^2/s"


def scaling_child(size: int, preset: str, window: int, overlap: int) -> None:
    """Run in a fresh process: predict SIZE^2 from a lazy cube into Zarr; print time and peak RSS."""
    torch.manual_seed(0)
    model = gx.models.create("lgt-lgcb", bands=BANDS, preset=preset).eval()
    cube = lazy_cube(size, chunks=1024)  # the same chunk size for both sizes: same parallel working set
    with tempfile.TemporaryDirectory() as tmp, dask.config.set(scheduler="threads"):
        t0 = time.perf_counter()
        cube.glacier.predict(model, window=window, overlap=overlap, chunks=1024).glacier.to_zarr(f"{tmp}/p.zarr")
        seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="small")
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--windows", default="256,512", help="part (a): window sizes")
    p.add_argument("--overlaps", default="0,64", help="part (a): overlaps")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--parts", default="a,b,c,d")
    p.add_argument("--device", default="auto")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=None, help="GPU bf16 peak, e.g. 989 for an H100 SXM")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        scaling_child(args.child, args.preset, args.window, 64)
        return
    parts = set(args.parts.split(","))
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    torch.manual_seed(0)
    model = gx.models.create("lgt-lgcb", bands=BANDS, preset=args.preset).eval().to(device)
    size, window = args.size, args.window
    print(f"lgt-lgcb/{args.preset} on {device}, window {window}, batch {args.batch_size}, "
          f"torch threads {torch.get_num_threads()}")

    if parts & {"a", "b"}:
        cube = lazy_cube(size).persist()
        cube.glacier.predict(model, window=window, overlap=0, device=device, batch_size=args.batch_size).values  # warm-up
    if "a" in parts:
        # raw and predict alternate, so that both see the same machine load; best of --repeat, and the
        # median of the pairwise ratios (wall and process CPU seconds) to show the spread
        print(f"(a) {'window':>6s} {'overlap':>7s} {'raw s':>7s} {'predict s':>9s} {'best/best':>9s} "
              f"{'median pair':>11s} {'cpu ratio':>9s} {'host raw':>8s} {'host pr':>7s} {'host-only':>9s}  (target <= 1.05)")
        for win in map(int, args.windows.split(",")):
            for ov in map(int, args.overlaps.split(",")):
                kw = dict(window=win, overlap=ov, device=device, batch_size=args.batch_size)
                cube.glacier.predict(model, **kw).values  # warm-up at this window size
                raw, pred = [], []
                for i in range(args.repeat):  # the order flips every pair: no first-or-second bias
                    pair = [(raw, lambda win=win, ov=ov: plain_loop(cube, model, win, args.batch_size, device, overlap=ov)),
                            (pred, lambda kw=kw: cube.glacier.predict(model, **kw).values)]
                    for times, fn in pair[:: 1 if i % 2 == 0 else -1]:
                        times.append(_clocked(fn))
                best_raw, best_pred = min(r[0] for r in raw), min(p[0] for p in pred)
                pair = statistics.median(p[0] / r[0] for p, r in zip(pred, raw, strict=True))
                cpu = statistics.median(p[1] / r[1] for p, r in zip(pred, raw, strict=True))
                host_raw, host_pred = host_seconds(cube, model, args.batch_size, device, win, ov)
                print(f"    {win:6d} {ov:7d} {best_raw:7.2f} {best_pred:9.2f} {best_pred / best_raw:9.3f} "
                      f"{pair:11.3f} {cpu:9.3f} {host_raw:7.3f} {host_pred:7.3f} "
                      f"{(best_raw - host_raw + host_pred) / best_raw:9.3f}  {rate(best_pred, size)}")
        t_pred = timed(lambda: cube.glacier.predict(model, window=window, overlap=0, device=device,
                                                    batch_size=args.batch_size).values, 1)
        windows = len(window_starts(size, window, window)) ** 2
        if device.startswith("cuda") and args.peak_tflops:
            from torch.utils.flop_counter import FlopCounterMode

            with FlopCounterMode(display=False) as fc, torch.inference_mode():
                model(torch.zeros(1, len(BANDS), window, window, device=device))
            achieved = fc.get_total_flops() * windows / t_pred / 1e12
            print(f"    {achieved:.1f} TFLOP/s = {achieved / args.peak_tflops:.1%} of bf16 peak")
    if "b" in parts:
        base = None
        for overlap in (0, 32, 64, 128):
            t = timed(lambda overlap=overlap: cube.glacier.predict(model, window=window, overlap=overlap, device=device,
                                                   batch_size=args.batch_size).values, args.repeat)
            base = base or t
            print(f"(b) overlap {overlap:3d}: {t:6.2f} s  ratio {t / base:.2f}  {rate(t, size)}")
    if "c" in parts:
        res = {}
        for s in (size // 2, size):
            out = subprocess.run([sys.executable, __file__, "--child", str(s), "--preset", args.preset,
                                  "--window", str(window)], capture_output=True, text=True, check=True)
            res[s] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"(c) {s}^2: {res[s]['seconds']:6.2f} s  peak RSS {res[s]['peak_rss_mb']:.0f} MB  {rate(res[s]['seconds'], s)}")
        small, large = res[size // 2], res[size]
        print(f"    time ratio {large['seconds'] / small['seconds']:.2f} (<= 4.4), "
              f"peak RSS ratio {large['peak_rss_mb'] / small['peak_rss_mb']:.2f} (<= 1.3)")
    if "d" in parts:
        from distributed import Client, LocalCluster

        lazy = lazy_cube(size)
        t_threads = timed(lambda: lazy.glacier.predict(model, window=window, overlap=64).sum().compute(scheduler="threads"), 1)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            lazy.glacier.predict(model, window=window, overlap=64, chunks=1024).sum().compute()  # warm-up: load weights
            t_dist = timed(lambda: client.compute(lazy.glacier.predict(model, window=window, overlap=64).sum()).result(), 1)
        print(f"(d) threaded {t_threads:6.2f} s  LocalCluster(2x1) {t_dist:6.2f} s  ratio {t_dist / t_threads:.2f}")


if __name__ == "__main__":
    main()
