"""Real data: train on one half of the Everest Landsat 7 scene, evaluate on the other against RGI 6.

The scene (``../shared/data/real/everest_landsat7``, 2000-10-30, 30 m, UTM 45N) is an 8-bit
stretched RGB composite plus band 4 (NIR): no SWIR, so no band ratio. It enters glacierxr by
*configuration*: a sensor spec whose bands name bands of the RGB asset (``BandSpec.index``) and a
STAC item made from the files (:func:`glacierxr.catalog.item_from_files`).

Train on the west half (70/30 blocked chips inside it), predict the east half with
``cube.glacier.predict``, and score it with :func:`glacierxr.evaluate` against the RGI 6.0
outlines, next to a brightness-threshold baseline whose threshold is fitted on the west half.

    python benchmarks/experiment_everest.py [--models lgt-lgcb,unet] [--init lgt-lgcb.synth-s2] [--swap]
        [--seeds 0,1,2] [--dem | --footprint]

Every choice is made on the training half: the model's epoch (validation blocks inside it) and
the probability threshold (best IoU on it). ``--seeds`` trains one model per seed and scores the
mean of their probabilities (an ensemble). ``--dem`` adds the 8 m HMA DEM of
``../shared/data/real/khumbu_s2_hma`` (elevation and slope, at 30 m) and crops the scene to the
part that DEM covers (39 % of it, the south), so both halves keep a DEM; ``--footprint`` crops the
same way without the DEM's bands (the control).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import torch
from scipy import ndimage

import glacierxr as gx
import glacierxr.models as gm
from glacierxr.catalog import item_from_files
from glacierxr.sensors import BandSpec, SensorSpec, register
from glacierxr.training import fit, rasterize_labels

SCENE = "LE71400412000304SGS00"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "everest_landsat7"
BANDS = ("B04", "B03", "B02", "B08")
HMA = SHARED.parent / "khumbu_s2_hma" / "hma-khumbu.tif"

#: The stretched 8-bit scene as a sensor: RGB bands 1-3 of one asset, NIR in another.
LANDSAT7_STRETCHED = SensorSpec(
    name="landsat7-stretched-rgbn", kind="optical", collections={"local": "everest-landsat7"},
    bands=(BandSpec("B04", ("rgb",), 30, 1 / 255, index=1), BandSpec("B03", ("rgb",), 30, 1 / 255, index=2),
           BandSpec("B02", ("rgb",), 30, 1 / 255, index=3), BandSpec("B08", ("nir",), 30, 1 / 255)),
)


#: The HMA DEM (uint16 metres, 0 = void) as a DEM sensor.
HMA_KHUMBU = SensorSpec(name="hma-khumbu", kind="dem", collections={"local": "hma-khumbu"},
                        bands=(BandSpec("elevation", ("data",), 8, 1.0, 0.0, 0, "bilinear"),))


def everest_cube(folder: Path = SHARED, dem: bool = False):
    """The scene as a cube cropped to its footprint (to the HMA DEM's with ``dem``), and the RGI 6 outlines."""
    register(LANDSAT7_STRETCHED, replace=True)
    items = [item_from_files(SCENE, {"rgb": folder / f"{SCENE}_RGB.tif", "nir": folder / f"{SCENE}_B4.tif"},
                             datetime="2000-10-30T04:40:00", collection="everest-landsat7")]
    if dem:
        register(HMA_KHUMBU, replace=True)
        items.append(item_from_files("hma-khumbu", {"data": HMA}, datetime="2016-01-01", collection="hma-khumbu"))
    cube = gx.open_cube(items, bbox=items[0].bbox, resolution=30, crs="EPSG:32645", chunks=256, indices=False)
    if not dem:
        cube = cube.sel(x=slice(478000, 502000), y=slice(3108140, 3088490)).persist()
    else:  # the DEM's footprint; its few voids filled from the nearest valid pixel; slope in degrees
        cube = cube.sel(x=slice(479860, 498080), y=slice(3100060, 3090130)).compute()
        z = cube["elevation"].values
        z = z[tuple(ndimage.distance_transform_edt(~np.isfinite(z), return_distances=False, return_indices=True))]
        gy, gx_ = np.gradient(z, 30.0)
        cube["elevation"] = cube["elevation"].copy(data=z)
        cube["slope"] = cube["elevation"].copy(data=np.degrees(np.arctan(np.hypot(gx_, gy))).astype("float32"))
    outlines = gpd.read_file(folder / "15_rgi60_glacier_outlines.gpkg")
    return cube, outlines


def halves(cube, swap: bool):
    mid = cube.sizes["x"] // 2 // 32 * 32  # a multiple of the models' stride
    west, east = cube.isel(x=slice(0, mid)), cube.isel(x=slice(mid, None))
    return (east, west) if swap else (west, east)


def brightness_baseline(train, test, outlines) -> tuple[float, dict]:
    """Threshold on (R + G + B) / 3 fitted on ``train`` (best IoU), scored on ``test``."""
    bright = lambda c: (c["B04"] + c["B03"] + c["B02"]) / 3  # noqa: E731
    labels = rasterize_labels(outlines, train["B04"]).values.astype(bool)
    b = bright(train).values
    best = max(np.arange(0.2, 0.95, 0.01), key=lambda t: ((b >= t) & labels).sum() / ((b >= t) | labels).sum())
    prob = (bright(test) >= best).astype("float32").rio.write_crs(test.rio.crs)
    return float(best), gx.evaluate(prob, outlines)


def ensemble(models, cube):
    """The mean glacier probability of ``models`` on ``cube``."""
    return sum(cube.glacier.predict(m, window=128, overlap=32).compute() for m in models) / len(models)


def fitted_threshold(models, train, outlines) -> float:
    """The probability threshold with the best glacier IoU on the training half (never the test half)."""
    prob = ensemble(models, train).values
    labels = rasterize_labels(outlines, train["B04"]).values.astype(bool)
    ok = np.isfinite(prob)
    return float(max(np.arange(0.1, 0.91, 0.05),
                     key=lambda t: ((prob >= t) & labels & ok).sum() / (((prob >= t) | labels) & ok).sum()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default="lgt-lgcb,unet", help="Architectures trained from scratch.")
    ap.add_argument("--init", default="lgt-lgcb.synth-s2",
                    help="Also fine-tune this checkpoint on the training half ('' for none).")
    ap.add_argument("--recipe", default="cpu", help="Training recipe (glacierxr.training.recipe).")
    ap.add_argument("--epochs", type=int, default=None, help="[the recipe's]")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--lr", type=float, default=None, help="[the recipe's]")
    ap.add_argument("--chip", type=int, default=64)
    ap.add_argument("--swap", action="store_true", help="Train on the east half, test on the west.")
    ap.add_argument("--seeds", default="0", help="One model per seed; their mean probability is scored.")
    area = ap.add_mutually_exclusive_group()
    area.add_argument("--dem", action="store_true", help="Add the HMA DEM (elevation, slope); crop to its footprint.")
    area.add_argument("--footprint", action="store_true", help="Crop to the HMA DEM's footprint, without its bands.")
    ap.add_argument("--out", type=Path, default=Path("everest-experiment"))
    args = ap.parse_args()

    cube, outlines = everest_cube(dem=args.dem or args.footprint)
    bands = BANDS + (("elevation", "slope") if args.dem else ())
    train, test = halves(cube, args.swap)
    rows = []
    t, scores = brightness_baseline(train, test, outlines)
    rows.append({"model": f"brightness >= {t:.2f}", "params_m": 0.0, "s_per_epoch": None, **_keep(scores)})
    runs = [(name, None) for name in args.models.split(",") if name]
    if args.init:
        runs.append((f"{args.init} fine-tuned", args.init))
    seeds = [int(s) for s in args.seeds.split(",")]
    tag = ("-dem" if args.dem else "-footprint" if args.footprint else "") + ("-swap" if args.swap else "")
    for name, init in runs:
        models, hists = [], []
        for seed in seeds:
            torch.manual_seed(seed)
            if init:  # the checkpoint's layers on the bands both share (a new input layer for the others)
                model = gm.with_bands(gm.load(init), bands)
            else:
                model = gm.create(name, bands=bands, preset=args.preset)
            ckpt = args.out / f"{name.replace(' ', '-')}{tag}-s{seed}.pt"
            # 8-bit stretched DNs, not reflectance: every model, the fine-tuned one too, is normalised
            # with the training half's statistics
            hists.append(fit(train, outlines, model, out=ckpt, recipe=args.recipe if not init else "finetune",
                             epochs=args.epochs, chip=args.chip, lr=args.lr, normalization="chips", seed=seed,
                             overwrite=True, progress=False))
            models.append(gm.load(ckpt))
        threshold = fitted_threshold(models, train, outlines)
        t0 = time.perf_counter()
        prob = ensemble(models, test)
        scores = gx.evaluate((prob >= threshold).astype("float32").where(prob.notnull()).rio.write_crs(prob.rio.crs),
                             outlines)
        rows.append({"model": f"{name}{f' x{len(seeds)} seeds' if len(seeds) > 1 else ''} (p >= {threshold:.2f})",
                     "params_m": sum(p.numel() for p in models[0].parameters()) / 1e6,
                     "s_per_epoch": float(np.mean([h["seconds"] for hist in hists for h in hist])),
                     "epochs": "/".join(str(len(h)) for h in hists),
                     "predict_s": time.perf_counter() - t0, **_keep(scores)})
    half = "east -> west" if args.swap else "west -> east"
    what = ("RGB + B4 + HMA DEM, 30 m, the DEM's footprint" if args.dem else
            "RGB + B4, 30 m, the HMA DEM's footprint" if args.footprint else "RGB + B4, 30 m")
    lines = [f"Everest Landsat 7 ({what}), train {half.split(' -> ')[0]} half, test {half.split(' -> ')[1]} "
             "half vs RGI 6.0", "", "| method | params (M) | epochs | s / epoch | OA | glacier F1 | glacier IoU | mIoU | "
             "boundary mean (m) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        spe = "–" if r["s_per_epoch"] is None else f"{r['s_per_epoch']:.1f}"
        lines.append(f"| {r['model']} | {r['params_m']:.2f} | {r.get('epochs', '–')} | {spe} | {r['oa']:.3f} | "
                     f"{r['f1']:.3f} | {r['iou']:.3f} | {r['miou']:.3f} | {r['boundary_mean_m']:.0f} |")
    text = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"results{tag}.json").write_text(json.dumps(rows, indent=1))
    print(text)


def _keep(scores: dict) -> dict:
    return {"oa": scores["oa"], "f1": scores["f1"]["glacier"], "iou": scores["iou"]["glacier"],
            "miou": scores["miou"], "boundary_mean_m": scores["boundary_mean_m"] or float("nan")}


if __name__ == "__main__":
    main()
