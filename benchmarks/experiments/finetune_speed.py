"""How much faster does fine-tuning the shipped model reach the band ratio than training from scratch?

    python benchmarks/experiments/finetune_speed.py [--epochs 1,3,10] [--work DIR]

The RGI workflow on one new region with the shipped model's own bands (ABCD): the region's
outlines exist (the last inventory), train on its west half, map its east half. The region (seed
41, Tien Shan, 1536 x 1536 px at 10 m) is none of the shipped model's training regions and has
heavy cloud on every date (30-45 %); ``--ela`` lowers its equilibrium line for a snowier variant
(default: the generator's, 60 % up the elevation range).

For each budget (epochs of the recipe: ``"cpu"`` from scratch, ``"finetune"`` from
``lgt-lgcb.synth-s2``) it trains with :func:`glacierxr.training.fit`, then scores the east half
with :func:`glacierxr.evaluate` against the truth, beside the band ratio and the shipped model
used as it is (0 epochs). Prints a Markdown table with the training seconds, and the first budget
at which each way beats the band ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import glacierxr as gx
import glacierxr.models as gm
from glacierxr.stac_server import serve
from glacierxr.synthetic import make_region
from glacierxr.training import bands_of, fit

SEED, SIZE, CENTER, ELA, CLOUD = 41, 1536, (78.0, 42.2), None, (0.35, 0.45, 0.3)
INIT = "lgt-lgcb.synth-s2"


def scored(model, test, truth) -> float:
    """Glacier IoU of ``model`` on the cube ``test`` against the outlines ``truth``."""
    prob = test.glacier.predict(model, window=512, overlap=64).compute()
    return gx.evaluate(prob, truth, objects=False)["iou"]["glacier"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", default="1,3,10", help="Training budgets to compare (comma-separated).")
    ap.add_argument("--seeds", default="0", help="Training seeds (comma-separated); scores are their mean.")
    ap.add_argument("--ela", type=float, default=ELA, help="Equilibrium-line altitude of the region (m).")
    ap.add_argument("--work", type=Path, default=None, help="Folder for the region and checkpoints.")
    a = ap.parse_args()
    budgets = [int(e) for e in a.epochs.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = a.work or Path(tmp)
        region = make_region(work / f"r{SEED}", seed=SEED, shape=(SIZE, SIZE), center=CENTER, ela=a.ela,
                             cloud_cover=CLOUD)
        with serve(region.stac_dir) as url:
            items = gx.search(url, bbox=region.bbox, datetime=region.datetime,
                              sensors=("sentinel-2", "sentinel-1", "dem"))
            cube = gx.open_cube(items, bbox=region.bbox, chunks=512).persist()
        mid = cube.sizes["x"] // 2 // 256 * 256
        train, test = cube.isel(x=slice(0, mid)), cube.isel(x=slice(mid, None))
        ratio = scored(gm.create("band-ratio", bands=["B03", "B04", "B08", "B11"]), test, region.truth_path)
        shipped = scored(gm.load(INIT), test, region.truth_path)
        rows = [{"way": "fine-tuned", "epochs": 0, "train_s": 0.0, "iou": shipped, "ious": [shipped]}]
        for way in ("scratch", "fine-tuned"):
            for epochs in budgets:
                ious, secs = [], []
                for seed in seeds:
                    torch.manual_seed(seed)
                    model = gm.load(INIT) if way == "fine-tuned" else gm.create("lgt-lgcb", bands=bands_of("ABCD"),
                                                                                   preset="tiny")
                    out = work / f"{way}-{epochs}-{seed}.pt"
                    t = time.perf_counter()
                    fit(train, region.truth_path, model, out=out, recipe="finetune" if way == "fine-tuned" else "cpu",
                        epochs=epochs, seed=seed, overwrite=True, progress=False)
                    secs.append(time.perf_counter() - t)
                    ious.append(scored(gm.load(out), test, region.truth_path))
                rows.append({"way": way, "epochs": epochs, "train_s": sum(secs) / len(secs),
                             "iou": sum(ious) / len(ious), "ious": ious})
                print(json.dumps(rows[-1]), flush=True)
    lines = [f"Region seed {SEED} ({CENTER[0]:g}, {CENTER[1]:g}), clouds {CLOUD}; train west half, test east half. "
             f"Band ratio IoU {ratio:.4f}; {INIT} as shipped (0 epochs) {shipped:.4f}.", "",
             "| epochs | from scratch: IoU (train s) | fine-tuned: IoU (train s) |", "|---|---|---|"]
    lines.append(f"| 0 | – | {shipped:.4f} (0) |")
    for epochs in budgets:
        s, f = (next(r for r in rows if r["way"] == w and r["epochs"] == epochs) for w in ("scratch", "fine-tuned"))
        lines.append(f"| {epochs} | {s['iou']:.4f} ({s['train_s']:.0f}) | {f['iou']:.4f} ({f['train_s']:.0f}) |")
    for way in ("scratch", "fine-tuned"):
        hit = next((r for r in rows if r["way"] == way and r["iou"] > ratio), None)
        lines.append(f"\n{way}: " + (f"beats the band ratio after {hit['epochs']} epochs ({hit['train_s']:.0f} s)"
                                     if hit else "does not beat the band ratio within these budgets"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
