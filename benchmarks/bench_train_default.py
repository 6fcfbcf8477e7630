"""`glacierxr train` with default options on one synthetic region, scored on three held-out regions.

    python benchmarks/bench_train_default.py [--presets tiny,small] [--out bench-train]

The training region is seed 11 (1536 x 1536 px at 10 m, Khumbu); the held-out regions are seeds
21-23 in the Karakoram, the central Andes (southern hemisphere) and the Alps (1024 x 1024 px).
Each preset is trained by the real command (``glacierxr train ... --preset P``, nothing else),
timed end to end (search, training raster, training), and every checkpoint and the band ratio
are scored by ``glacierxr evaluate --json`` on each held-out region. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

from glacierxr.stac_server import serve
from glacierxr.synthetic import make_region

TRAIN = (11, 1536, (86.92, 27.98))
HELD_OUT = [(21, 1024, (77.5, 35.5)), (22, 1024, (-70.0, -33.0)), (23, 1024, (8.0, 46.5))]
CLI = [sys.executable, "-m", "glacierxr.cli"]


def region_args(region, url):
    return ["--stac", url, "--bbox", *map(str, region.bbox), "--datetime", region.datetime]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--out", type=Path, default=Path("bench-train"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    make = lambda s, n, c: make_region(a.out / f"region-{s}", seed=s, shape=(n, n), center=c)  # noqa: E731
    train = make(*TRAIN)
    tests = [make(*t) for t in HELD_OUT]
    rows, models = [], {"band-ratio": "band-ratio"}
    with serve(train.stac_dir) as url:
        for preset in a.presets.split(","):
            ckpt = a.out / f"lgt-lgcb-{preset}.pt"
            t = time.perf_counter()
            proc = subprocess.run([*CLI, "train", *region_args(train, url), "--outlines", str(train.truth_path),
                                   "--preset", preset, "--out", str(ckpt), "--overwrite"], capture_output=True, text=True)
            wall = time.perf_counter() - t
            print(proc.stdout[-400:], proc.stderr[-400:], f"{preset}: {wall:.0f} s, exit {proc.returncode}", flush=True)
            models[f"lgt-lgcb {preset}"] = str(ckpt)
            rows.append({"model": f"lgt-lgcb {preset}", "train_wall_s": wall, "exit": proc.returncode})
    scores: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        for region in tests:
            url = stack.enter_context(serve(region.stac_dir))
            for name, model in models.items():
                proc = subprocess.run([*CLI, "evaluate", *region_args(region, url), "--model", model, "--reference",
                                       str(region.truth_path), "--json"], capture_output=True, text=True, check=True)
                scores.setdefault(name, []).append(json.loads(proc.stdout)["iou"]["glacier"])
    lines = ["| model | train (s, whole command) | " + " | ".join(f"IoU seed {s}" for s, _, _ in HELD_OUT)
             + " | mean | vs band ratio |", "|---|---|" + "---|" * (len(HELD_OUT) + 2)]
    ratio = scores["band-ratio"]
    for name, vals in scores.items():
        wall = next((f"{r['train_wall_s']:.0f}" for r in rows if r["model"] == name), "–")
        diff = " / ".join(f"{v - b:+.4f}" for v, b in zip(vals, ratio, strict=True))
        lines.append(f"| {name} | {wall} | " + " | ".join(f"{v:.4f}" for v in vals)
                     + f" | {sum(vals) / len(vals):.4f} | {diff} |")
    text = "\n".join(lines)
    (a.out / "table.md").write_text(text + "\n")
    (a.out / "results.json").write_text(json.dumps({"train": rows, "iou": scores}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
