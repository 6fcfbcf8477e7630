"""Parameters, forward FLOPs per 512 x 512 tile and CPU throughput of every model.

Usage::

    python benchmarks/bench_models.py                      # every model, "paper" preset, 2 threads
    python benchmarks/bench_models.py --preset tiny --tiles 8
    python benchmarks/bench_models.py --models lgt-lgcb,unet --threads 4

Prints a Markdown table: parameters (with the encoder / decoder split of the LGT models), the
parameter count of Peng et al. (2023) Table 3 where it has one and our difference to it, forward
FLOPs per tile counted by :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts
as 2 FLOPs; element-wise operations are not counted) and tiles per second on the CPU (one tile per
forward pass; the inverse of the median time of the timed tiles). The load average before and after
is printed: other processes on the machine slow the timings down.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import glacierxr.models as gm
from glacierxr.models.registry import get_entry

#: The input stack of the paper's multi-sensor setting, as cube variables.
CUBE_BANDS = ("B02", "B03", "B04", "B08", "B11", "VV", "VH", "NDVI", "NDSI", "NDWI", "elevation")
RATIO_BANDS = ("B03", "B04", "B08", "B11")


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def measure(name: str, preset: str, tile: int, tiles: int, warmup: int = 1) -> dict:
    """Parameters, FLOPs per tile and tiles/s (batch of one, after warm-up tiles) of one model."""
    torch.manual_seed(0)
    model = gm.create(name, bands=RATIO_BANDS if name == "band-ratio" else CUBE_BANDS, preset=preset).eval()
    x = torch.randn(1, len(model.bands), tile, tile)
    row = {"name": name, "params": _params(model), "paper": get_entry(name).paper_params_m}
    if hasattr(model, "encoder") and hasattr(model, "decoder"):
        row["split"] = (_params(model.encoder), _params(model.decoder))
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
        row["flops"] = counter.get_total_flops()
        for _ in range(warmup):  # the counted pass above is the first; oneDNN caches on the next ones
            model(x)
        times = []
        for _ in range(tiles):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
        row["tiles_per_s"] = 1.0 / statistics.median(times)
    return row


def table(rows: list[dict], *, tile: int, threads: int, tiles: int) -> str:
    head = (f"| model | parameters (M) | encoder / decoder (M) | paper Table 3 (M) | difference | "
            f"GFLOPs / {tile}x{tile} tile | tiles/s (CPU, {threads} threads, median of {tiles}) |")
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        m = r["params"] / 1e6
        split = f"{r['split'][0] / 1e6:.1f} / {r['split'][1] / 1e6:.1f}" if "split" in r else ""
        paper = f"{r['paper']:.1f}" if r["paper"] else "-"
        diff = f"{100 * (m - r['paper']) / r['paper']:+.0f} %" if r["paper"] else "-"
        lines.append(f"| {r['name']} | {m:.2f} | {split} | {paper} | {diff} | {r['flops'] / 1e9:.1f} | "
                     f"{r['tiles_per_s']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=gm.PRESETS, help="preset of every model (default paper)")
    parser.add_argument("--models", default=",".join(gm.available()),
                        help="comma-separated registry names (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--tiles", type=int, default=2, help="tiles timed per model after a warm-up (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed tiles before timing (default 1)")
    parser.add_argument("--tile", type=int, default=512, help="tile side in pixels (default 512)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    load_before = os.getloadavg()[0]
    rows = [measure(n, args.preset, args.tile, args.tiles, args.warmup) for n in names]
    load_after = os.getloadavg()[0]
    print(f"glacierxr model benchmark: preset={args.preset}, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()} with {os.cpu_count()} CPUs, {args.threads} threads, "
          f"{len(CUBE_BANDS)} input bands ({len(RATIO_BANDS)} for band-ratio); "
          f"1-min load average {load_before:.2f} before, {load_after:.2f} after\n")
    print(table(rows, tile=args.tile, threads=args.threads, tiles=args.tiles))


if __name__ == "__main__":
    main()
