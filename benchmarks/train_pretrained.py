"""Train the shipped checkpoint ``lgt-lgcb.synth-s2`` again, and score it on held-out regions.

    python benchmarks/train_pretrained.py --out glacierxr/models/weights/lgt-lgcb.synth-s2.pt
    python benchmarks/train_pretrained.py --evaluate glacierxr/models/weights/lgt-lgcb.synth-s2.pt

Training data: eight seeded synthetic mountain ranges (seeds 1001-1008, 1024 x 1024 px at 10 m) placed in
both hemispheres from 62 N to 50 S, with their own debris cover, seasonal snow, lakes and cloud
cover per date. No test, example or demo region uses these seeds. Bands: Sentinel-2 B02 B03 B04
B08 B11, Sentinel-1 VV VH, NDVI NDSI NDWI and the DEM (the paper's ABCD). The "cpu" recipe with a
larger budget (60 epochs of 512 chips, 45 minutes at most) on 2 CPU cores.

Held-out scoring: three other regions (seeds 21-23, in the Karakoram, the central Andes and the
Alps); glacier IoU and debris recall of the checkpoint and of the band ratio, as a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import glacierxr as gx
import glacierxr.models as gm
from glacierxr.stac_server import serve
from glacierxr.synthetic import make_region
from glacierxr.training import bands_of, fit, recipe
from glacierxr.training.experiment import _on_grid

#: (seed, (lon, lat), cloud cover per date) of the training regions.
TRAIN = [
    (1001, (76.6, 35.9), (0.0, 0.3, 0.1)), (1002, (86.6, 28.1), (0.05, 0.15, 0.0)),
    (1003, (10.8, 46.8), (0.0, 0.1, 0.25)), (1004, (-72.9, -49.2), (0.1, 0.3, 0.05)),
    (1005, (-147.3, 61.2), (0.0, 0.2, 0.2)), (1006, (42.5, 43.1), (0.0, 0.05, 0.1)),
    (1007, (-70.3, -33.4), (0.0, 0.0, 0.15)), (1008, (170.5, -43.6), (0.2, 0.1, 0.0)),
]
#: (seed, (lon, lat)) of the held-out regions.
HELD_OUT = [(21, (77.5, 35.5)), (22, (-70.0, -33.0)), (23, (8.0, 46.5))]
SIZE = 1024
BANDS = bands_of("ABCD")
DESCRIPTION = ("Trained only on seeded synthetic scenes (glacierxr.synthetic: Sentinel-2 L2A reflectance, "
               "Sentinel-1 gamma0, a DEM) of 8 regions; not validated on real imagery: fine-tune it on a "
               "region's outlines (glacierxr train --init lgt-lgcb.synth-s2) before trusting it there.")


@contextlib.contextmanager
def region_cube(work: Path, seed: int, center, cloud=(0.0, 0.22, 0.08)):
    """A synthetic region, its lazy cube (Sentinel-2 + Sentinel-1 + DEM) and its truth."""
    region = make_region(work / f"r{seed}", seed=seed, shape=(SIZE, SIZE), center=center, cloud_cover=cloud)
    with serve(region.stac_dir) as url:
        items = gx.search(url, bbox=region.bbox, datetime=region.datetime, sensors=("sentinel-2", "sentinel-1", "dem"))
        yield region, gx.open_cube(items, bbox=region.bbox, chunks=512)


def train(out: Path, work: Path, minutes: float, epochs: int, preset: str) -> None:
    with contextlib.ExitStack() as stack:
        regions = [stack.enter_context(region_cube(work, s, c, cl)) for s, c, cl in TRAIN]
        torch.manual_seed(0)
        model = gm.create("lgt-lgcb", bands=BANDS, preset=preset)
        r = dataclasses.replace(recipe("cpu", epochs=epochs, time_limit=minutes * 60), per_epoch=512)
        t = time.perf_counter()
        hist = fit([c for _, c in regions], [reg.truth_path for reg, _ in regions], model, out=out, recipe=r,
                   overwrite=True, provenance={"pretrained": True, "description": DESCRIPTION,
                                               "data": {"synthetic_regions": [{"seed": s, "center": list(c),
                                                                               "size": SIZE} for s, c, _ in TRAIN]},
                                               "command": "python benchmarks/train_pretrained.py --out lgt-lgcb.synth-s2.pt"})
        print(f"trained {len(hist)} epochs in {time.perf_counter() - t:.0f} s; best validation mIoU "
              f"{max(h['miou'] for h in hist):.4f}")


def evaluate(checkpoint: str, work: Path) -> list[dict]:
    model = gm.load(checkpoint)
    ratio = gm.create("band-ratio", bands=["B03", "B04", "B08", "B11"])
    rows = []
    for seed, center in HELD_OUT:
        with region_cube(work, seed, center) as (region, cube):
            cube = cube.persist()
            debris = _on_grid(region.arrays["debris"], region.transform, cube).values == 1
            for name, m in (("band-ratio", ratio), (Path(checkpoint).stem, model)):
                t = time.perf_counter()
                prob = cube.glacier.predict(m, window=512, overlap=64).compute()
                s = gx.evaluate(prob, region.truth_path, objects=False)
                rows.append({"region": f"seed {seed} ({center[0]:g}, {center[1]:g})", "method": name,
                             "glacier_iou": s["iou"]["glacier"], "miou": s["miou"], "f1": s["f1"]["glacier"],
                             "debris_recall": float((prob.values >= 0.5)[debris].mean()),
                             "predict_s": time.perf_counter() - t})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| region | method | glacier IoU | glacier F1 | mIoU | debris IoU (recall) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['region']} | {r['method']} | {r['glacier_iou']:.4f} | {r['f1']:.4f} | {r['miou']:.4f} | "
              f"{r['debris_recall']:.3f} |" for r in rows]
    for method in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == method]
        lines.append(f"| **mean** | {method} | {np.mean([r['glacier_iou'] for r in sel]):.4f} | "
                     f"{np.mean([r['f1'] for r in sel]):.4f} | {np.mean([r['miou'] for r in sel]):.4f} | "
                     f"{np.mean([r['debris_recall'] for r in sel]):.3f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="Train and write the checkpoint here.")
    p.add_argument("--evaluate", metavar="CHECKPOINT", help="Score a checkpoint (a path or a shipped name).")
    p.add_argument("--minutes", type=float, default=45.0)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--work", type=Path, default=None, help="Folder for the regions (default: a temporary one).")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = a.work or Path(tmp)
        if a.out:
            train(a.out, work, a.minutes, a.epochs, a.preset)
        if a.evaluate or a.out:
            rows = evaluate(a.evaluate or str(a.out), work)
            print(json.dumps(rows))
            print(table(rows))


if __name__ == "__main__":
    main()
