"""One row of the recipe ablation (RECIPE.md): train on synthetic seed 11, score seeds 21-23.

    python benchmarks/experiments/ablate_recipe.py --tag full
    python benchmarks/experiments/ablate_recipe.py --tag uniform --set sampling=uniform
    python benchmarks/experiments/ablate_recipe.py --tag no-refine --refine 0
    python benchmarks/experiments/ablate_recipe.py --tag paper --recipe paper --set epochs=10

``--set KEY=VALUE`` changes one value of the recipe (glacierxr.training.recipe.Recipe);
``--refine N`` the width of the full-resolution refinement (0: the paper's head). Appends one JSON
line to ``--results`` and prints it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from train_pretrained import HELD_OUT, region_cube  # noqa: E402  (the same held-out regions)

import glacierxr as gx  # noqa: E402
import glacierxr.models as gm  # noqa: E402
from glacierxr.training import RECIPES, bands_of, fit, recipe  # noqa: E402

TRAIN = (11, (86.92, 27.98))


def parse(kv: str, base) -> tuple[str, object]:
    key, value = kv.split("=", 1)
    current = getattr(base, key)
    if value == "None":
        return key, None
    return key, value if isinstance(current, str) else type(current if current is not None else 1.0)(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tag", required=True)
    ap.add_argument("--recipe", default="cpu")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--refine", type=int, default=16)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", type=Path, default=Path("ablation.jsonl"))
    a = ap.parse_args()
    r = dataclasses.replace(RECIPES[a.recipe], **dict(parse(kv, RECIPES[a.recipe]) for kv in a.set))
    r = recipe(r)  # validated
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        torch.manual_seed(a.seed)
        model = gm.create("lgt-lgcb", bands=bands_of("ABCD"), preset=a.preset, refine_channels=a.refine)
        with region_cube(work, TRAIN[0], TRAIN[1]) as (region, cube):
            t = time.perf_counter()
            hist = fit(cube, region.truth_path, model, out=work / "m.pt", recipe=r, seed=a.seed, progress=False)
            train_s = time.perf_counter() - t
        best = gm.load(work / "m.pt")
        iou = []
        for seed, center in HELD_OUT:
            with region_cube(work, seed, center) as (test, tcube):
                prob = tcube.glacier.predict(best, window=512, overlap=64)
                iou.append(gx.evaluate(prob, test.truth_path, objects=False)["iou"]["glacier"])
    row = {"tag": a.tag, "recipe": r.to_dict(), "refine": a.refine, "preset": a.preset, "seed": a.seed,
           "train_s": round(train_s), "epochs": len(hist), "stopped": hist[-1].get("stopped"), "iou": iou}
    with a.results.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
