"""The ``glacierxr`` command line: a thin layer over the library's functions."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from glacierxr.errors import GlacierxrError

__all__ = ["main"]


class _Group(click.Group):
    """Report GlacierxrError as one line on stderr with exit code 2, never a traceback.

    The library's messages name Python parameters (``max_cloud=150.0``, ``resume=True``); on
    the command line they name the flags the user typed instead (``--max-cloud 150.0``,
    ``--resume``).
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GlacierxrError as exc:
            name = ctx.invoked_subcommand
            command = self.get_command(ctx, name) if name else None
            message = str(exc) if command is None else as_flags(str(exc), command)
            click.echo(f"error: {message}", err=True)
            sys.exit(2)


def as_flags(message: str, command: click.Command) -> str:
    """``message`` with ``name=value`` of ``command``'s options written as ``--flag value``."""
    import re

    for param in command.params:
        if not isinstance(param, click.Option) or not param.name:
            continue
        flag = max(param.opts, key=len)
        if param.is_flag:
            off = max(param.secondary_opts, key=len) if param.secondary_opts else None
            message = re.sub(rf"\b{param.name}=True\b", flag, message)
            if off:
                message = re.sub(rf"\b{param.name}=False\b", off, message)
        message = re.sub(rf"(?<![\w-]){param.name}=([^\s,;()]+?)(?=[.,;)]?(?:\s|$))", rf"{flag} \1", message)
    return message


@click.group(cls=_Group)
@click.version_option(package_name="glacierxr")
def main() -> None:
    """glacierxr: glacier outlines and inventories from STAC imagery, lazily, at any scale."""


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Random seed of the region.")
@click.option("--size", default=1024, show_default=True, help="Rows and columns of the 10 m grid.")
@click.option("--center", nargs=2, type=float, default=(86.92, 27.98), show_default=True, help="LON LAT of the centre.")
@click.option("--dates", default=3, show_default=True, help="Number of Sentinel-2 acquisitions.")
def synth(out_dir: Path, seed: int, size: int, center: tuple[float, float], dates: int) -> None:
    """Write a seeded synthetic glaciated region (COGs + STAC + true outlines) to OUT_DIR."""
    from glacierxr.synthetic import make_region

    region = make_region(out_dir, seed=seed, shape=(size, size), center=center, dates=dates)
    click.echo(json.dumps(_describe(region), indent=2))


@main.group()
def stac() -> None:
    """Local STAC API helpers."""


@stac.command("serve")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def stac_serve(folder: Path) -> None:
    """Serve FOLDER (collections + items) as a STAC API on a free 127.0.0.1 port until Ctrl-C."""
    import signal

    from glacierxr.stac_server import serve

    # SIGTERM must unwind the context manager so the rustac child stops with us
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with serve(folder) as url:
        click.echo(url, nl=True)
        sys.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


def _region_options(f):
    """``--bbox W S E N`` or ``--aoi FILE`` (+ ``--buffer-km``), tiles and resolution: shared by plan and inventory."""
    for option in reversed((
        click.option("--bbox", nargs=4, type=float, default=None, metavar="W S E N", help="Region in degrees."),
        click.option("--aoi", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Region as a vector file (RGI outlines, a mountain-range polygon; any format GDAL reads)."),
        click.option("--buffer-km", default=0.0, show_default=True, help="Grow the AOI by this distance."),
        click.option("--tile-km", default=100.0, show_default=True, help="Production tile size (nests in 100 km)."),
        click.option("--margin-km", default=2.0, show_default=True, help="Margin predicted around each tile."),
        click.option("--resolution", type=float, default=None,
                     help="Pixel size in metres [default: the model's, 10 for band-ratio and for plan]."),
    )):
        f = option(f)
    return f


def _region(bbox, aoi):
    from glacierxr.errors import InvalidArgumentError

    if (bbox is None) == (aoi is None):
        raise InvalidArgumentError("Pass the region as either --bbox W S E N or --aoi FILE.")
    return bbox, aoi


@main.command("plan")
@click.option("--stac", required=True, help="STAC API URL, or earth-search / planetary-computer.")
@_region_options
@click.option("--datetime", "datetime_", required=True, metavar="A/B", help="Date window, e.g. 2023-07-15/2023-09-30.")
@click.option("--sensors", default="sentinel-2,dem", show_default=True, help="Comma-separated sensors to search.")
@click.option("--max-cloud", type=float, default=None, help="Maximum scene cloud cover (percent).")
@click.option("--chunk", default=2048, show_default=True, help="Chunk size in pixels inside a tile.")
@click.option("--max-items", type=int, default=None, help="Cap on items per sensor (default: every item; a hit cap warns).")
@click.option("--workers", default=4, show_default=True, help="Workers for the run-time estimate.")
@click.option("--throughput", default=None, type=float,
              help="km²/s per worker for the estimate (default 5; a run measures it: manifest.json km2_per_s).")
@click.option("--map", "map_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("plan.png"),
              show_default=True, help="PNG map of the tiles over the AOI.")
@click.option("--json", "as_json", is_flag=True,
              help="Print ONE JSON object (tiles, epsg, km2, items, max_tasks_per_tile, tile_km).")
def plan_command(stac, bbox, aoi, buffer_km, tile_km, margin_km, resolution, datetime_, sensors, max_cloud, chunk,
                 max_items, workers, throughput, map_path, as_json) -> None:
    """Plan a regional run: tiles, zones, items and task counts; no pixel is read."""
    from glacierxr.plan import plan_region

    bbox, aoi = _region(bbox, aoi)
    resolution = resolution or 10.0
    plan = plan_region(stac, aoi=bbox if bbox is not None else aoi, datetime=datetime_, tile_km=tile_km,
                       margin_km=margin_km, buffer_km=buffer_km, resolution=resolution, chunk=chunk,
                       sensors=tuple(s.strip() for s in sensors.split(",") if s.strip()), max_cloud=max_cloud,
                       max_items=max_items)
    summary = plan.summary()
    if as_json:
        click.echo(json.dumps(summary))
        return
    rate = throughput or 5.0
    seconds = plan.estimate_s(workers, rate)
    click.echo(f"tiles      {summary['tiles']} of {tile_km:g} km (+{margin_km:g} km margin) at {resolution:g} m, "
               f"UTM EPSG {', '.join(map(str, summary['epsg']))}")
    click.echo(f"area       {summary['km2']:,.0f} km² owned by the tiles")
    click.echo("items      " + ", ".join(f"{k}: {v}" for k, v in summary["items_per_sensor"].items())
               + f" (search {summary['search_s']:.1f} s)")
    click.echo(f"per tile   <= {summary['max_items_per_tile']} items, {summary['chunks_per_tile']} chunks, "
               f"<= {summary['max_tasks_per_tile']:,} tasks in its graph")
    click.echo(f"estimate   {seconds / 3600:,.2f} h on {workers} workers at {rate:g} km²/s per worker"
               + ("" if throughput else " (pass --throughput with your measured km²/s per worker)"))
    click.echo(f"map        {plan.write_map(map_path)}")


@main.command("inventory")
@click.option("--stac", required=True, help="STAC API URL, or earth-search / planetary-computer.")
@_region_options
@click.option("--datetime", "datetime_", required=True, metavar="A/B", help="Date window, e.g. 2023-07-15/2023-09-30.")
@click.option("--model", default="band-ratio", show_default=True,
              help="band-ratio, a shipped checkpoint (lgt-lgcb.synth-s2) or a checkpoint path.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--workers", type=int, default=None, help="Start a LocalCluster with N worker processes.")
@click.option("--scheduler", default=None, help="Address of a running Dask scheduler.")
@click.option("--chunk", default=2048, show_default=True, help="Chunk size in pixels inside a tile.")
@click.option("--window", default=512, show_default=True, help="Prediction window in pixels.")
@click.option("--tile", type=int, default=None, hidden=True, help="Deprecated name of --window.")
@click.option("--overlap", default=64, show_default=True, help="Pixels shared by neighbouring windows.")
@click.option("--max-cloud", type=float, default=None, help="Maximum scene cloud cover (percent).")
@click.option("--min-area", "min_area_km2", default=0.05, show_default=True, help="Smallest glacier kept (km², geodesic).")
@click.option("--split/--no-split", default=True, show_default=True,
              help="Split ice masses into glaciers at ice divides on the DEM (complexes.parquet keeps the masses).")
@click.option("--max-in-flight", type=int, default=None, help="Tiles submitted at a time (default: 2 per worker thread).")
@click.option("--no-quicklook", is_flag=True, help="Skip quicklook.png.")
@click.option("--resume", is_flag=True, help="Finish an interrupted run in --out.")
@click.option("--overwrite", is_flag=True, help="Replace what is in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar or messages.")
def inventory_command(stac, bbox, aoi, buffer_km, tile_km, margin_km, resolution, datetime_, model, out_dir, workers,
                      scheduler, chunk, window, tile, overlap, max_cloud, min_area_km2, split, max_in_flight,
                      no_quicklook, resume, overwrite, quiet) -> None:
    """Produce the glacier inventory of a region, tile by tile: outlines, inventory, tiles, quicklook, manifest."""
    from glacierxr.pipeline import run_inventory

    bbox, aoi = _region(bbox, aoi)
    run_inventory(stac, bbox=bbox, aoi=aoi, buffer_km=buffer_km, datetime=datetime_, out=out_dir, model=model,
                  workers=workers, scheduler=scheduler, tile_km=tile_km, margin_km=margin_km, resolution=resolution,
                  chunk=chunk, window=_window_option(window, tile), overlap=overlap, max_cloud=max_cloud,
                  min_area_km2=min_area_km2, split=split, max_in_flight=max_in_flight, quicklook=not no_quicklook,
                  resume=resume, overwrite=overwrite, quiet=quiet, echo=click.echo)


@main.command()
@click.option("--out", "out_dir", default="demo-output", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", default=1024, show_default=True, help="Rows and columns of the embedded region (10 m pixels).")
@click.option("--seed", default=0, show_default=True)
@click.option("--center", nargs=2, type=float, default=(90.0, 28.0), show_default=True,
              help="LON LAT of the centre; the default lies on the line between UTM zones 45N and 46N.")
@click.option("--tile-km", default=5.0, show_default=True, help="Production tile size (a real range uses 100).")
@click.option("--workers", default=2, show_default=True, help="LocalCluster worker processes (0: threads).")
@click.option("--model", default="lgt-lgcb.synth-s2", show_default=True,
              help="The shipped Transformer, band-ratio, or a checkpoint path.")
def demo(out_dir: Path, size: int, seed: int, center: tuple[float, float], tile_km: float, workers: int,
         model: str) -> None:
    """Run `glacierxr inventory` on the embedded synthetic region, end to end, offline.

    It maps with the shipped Transformer (lgt-lgcb.synth-s2, trained on other synthetic regions)
    and scores it next to the band ratio run the same way.

    The region straddles a UTM zone line and is cut into small production tiles, so the demo
    shows what a mountain range needs: per-zone grids, one task per tile, and glaciers that
    cross tile borders or the zone line merged into one polygon.
    """
    import geopandas as gpd

    import glacierxr as gx
    from glacierxr.pipeline import open_mosaic, run_inventory
    from glacierxr.stac_server import serve
    from glacierxr.synthetic import make_region

    t0 = time.perf_counter()
    region = make_region(out_dir / "region", seed=seed, shape=(size, size), center=center)
    zones = ", ".join(region.zones)
    click.echo(f"region     {region.name}: {size} x {size} px at 10 m across {zones}, {region.datetime}")
    run = out_dir / "inventory"
    ratio_run = out_dir / "inventory-band-ratio"
    common = dict(bbox=region.bbox, datetime=region.datetime, tile_km=tile_km, margin_km=0.5, workers=workers or None,
                  chunk=512, overwrite=True)
    with serve(region.stac_dir) as url:
        click.echo(f"STAC API   {url} (rustac serve)")
        click.echo(f"command    glacierxr inventory --stac {url} --bbox {' '.join(f'{v:.5f}' for v in region.bbox)} "
                   f"--datetime {region.datetime} --model {model} --tile-km {tile_km:g} --margin-km 0.5 "
                   f"--out {run} --workers {workers}")
        run_inventory(url, out=run, model=model, echo=click.echo, **common)
        if model != "band-ratio":
            click.echo("baseline   the same run with the band ratio, for comparison")
            run_inventory(url, out=ratio_run, model="band-ratio", quiet=True, **common)
    truth = gpd.read_file(region.truth_path)
    if len(truth):
        runs = [(model, run)] + ([("band-ratio", ratio_run)] if model != "band-ratio" else [])
        for name, folder in runs:
            for epsg, prob in open_mosaic(folder).items():  # scored on each zone's grid
                _report_accuracy(gx.evaluate(prob, truth), f"{name:<17} EPSG:{epsg}")
        _report_glaciers(run, truth, region.complexes_path)
    else:
        click.echo("accuracy   the region has no true glacier to score against")
    click.echo("outputs    " + "\n           ".join(str(run / n) for n in (
        "outlines.parquet", "outlines.gpkg", "complexes.parquet", "inventory.csv", "quicklook.png", "manifest.json",
        "tiles/ (per tile: probability.zarr, glaciers, ledger; tiles/collection.json catalogues them)")))
    click.echo(f"           true outlines {region.truth_path}; STAC {region.stac_dir}")
    click.echo(f"done in {time.perf_counter() - t0:.1f} s")


def _report_glaciers(run: Path, truth, truth_complexes: Path, min_km2: float = 0.05) -> None:
    """The run's glaciers and ice complexes against the true ones: counts, areas, per-glacier IoU."""
    import geopandas as gpd

    import glacierxr as gx

    ours = gpd.read_parquet(run / "outlines.parquet")
    ours_cx = gpd.read_parquet(run / "complexes.parquet")
    truth = truth[truth["area_km2"] >= min_km2]
    truth_cx = gpd.read_file(truth_complexes)
    truth_cx = truth_cx[truth_cx["area_km2"] >= min_km2]
    click.echo(f"glaciers   ours {len(ours)} in {len(ours_cx)} ice complexes, {ours['area_km2'].sum():.2f} km²; "
               f"truth {len(truth)} in {len(truth_cx)} complexes, {truth['area_km2'].sum():.2f} km² "
               f"(>= {min_km2:g} km²)")
    if len(ours):
        per, _ = gx.compare_inventories(ours, truth)
        big = per["area_ref_km2"] > 1
        click.echo(f"           per true glacier: IoU median {per['iou'].median():.3f} (> 1 km²: "
                   f"{per.loc[big, 'iou'].median():.3f}), area error median {per['area_change_pct'].median():+.1f} %")
        largest = lambda a: " ".join(f"{v:.2f}" for v in sorted(a, reverse=True)[:6])  # noqa: E731
        click.echo(f"           largest km²: ours {largest(ours['area_km2'])} | truth {largest(truth['area_km2'])}")


def _report_accuracy(scores: dict, where: str = "") -> None:
    click.echo(f"accuracy   {where + ' ' if where else ''}vs true outlines: OA {scores['oa']:.3f}  "
               f"glacier IoU {scores['iou']['glacier']:.3f}  "
               f"mIoU {scores['miou']:.3f}  mean F1 {scores['mean_f1']:.3f}  "
               f"boundary mean {scores['boundary_mean_m']:.1f} m / p95 {scores['boundary_p95_m']:.1f} m")


def _describe(region) -> dict:
    return {
        "name": region.name, "bbox": list(region.bbox), "datetime": region.datetime, "crs": region.crs,
        "shape": list(region.shape), "stac_dir": str(region.stac_dir), "truth_path": str(region.truth_path),
        "items": region.collections,
    }


# ----------------------------------------------------------------------------- training and evaluation


def _cube_for(stac: str, bbox, datetime_: str, bands, max_cloud, resolution: float, chunk: int):
    """Search the sensors ``bands`` need and open the cube on the bbox."""
    import glacierxr as gx
    from glacierxr.pipeline import sensors_for

    items = gx.search(stac, bbox=bbox, datetime=datetime_, sensors=sensors_for(bands), max_cloud=max_cloud)
    click.echo("search     " + ", ".join(f"{k}: {len(v)} items" for k, v in items.items()), err=True)
    return gx.open_cube(items, bbox=bbox, resolution=resolution, chunks=chunk)


def _parse_bands(value: str) -> tuple[str, ...]:
    from glacierxr.errors import InvalidArgumentError
    from glacierxr.models import DEFAULT_NORMALIZATION
    from glacierxr.training.experiment import bands_of

    value = value.strip()
    if value and "," not in value and value.isalpha() and value not in DEFAULT_NORMALIZATION:
        # group letters such as ABCD or abd; an unknown letter is an error naming the groups, not a
        # band the cube lacks (one band of another name is written with a comma: "NIR,")
        try:
            return bands_of(value.upper())
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"--bands {value}: {exc}; or a comma list of band names, e.g. B03,B04,B08,B11.") \
                from None
    return tuple(b.strip() for b in value.split(",") if b.strip())


def _window_option(window: int, tile: int | None) -> int:
    """``--window``, or its deprecated alias ``--tile`` (a warning on stderr); never both."""
    from click.core import ParameterSource

    from glacierxr.errors import InvalidArgumentError

    if tile is None:
        return window
    if click.get_current_context().get_parameter_source("window") is not ParameterSource.DEFAULT:
        raise InvalidArgumentError("--tile is the deprecated name of --window; pass only --window.")

    click.echo("warning: --tile is deprecated, use --window", err=True)
    return tile


_STAC = click.option("--stac", required=True, help="STAC API URL, or earth-search / planetary-computer.")

_BBOX = click.option("--bbox", nargs=4, type=float, required=True, metavar="W S E N", help="Region in degrees.")
_DATETIME = click.option("--datetime", "datetime_", required=True, metavar="A/B", help="Date window.")


@main.command("train")
@_STAC
@_BBOX
@_DATETIME
@click.option("--outlines", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Glacier outlines (any vector file, any CRS) used as labels, e.g. the region's RGI.")
@click.option("--model", "arch", default="lgt-lgcb", show_default=True, help="Architecture (glacierxr.models.available()).")
@click.option("--init", default=None, metavar="NAME|PATH",
              help="Fine-tune this checkpoint (a shipped name such as lgt-lgcb.synth-s2, or a path) instead of "
                   "training --model from scratch; bands it lacks get a new input channel.")
@click.option("--preset", default="small", show_default=True, type=click.Choice(["paper", "small", "tiny"]))
@click.option("--bands", default=None,
              help="Band groups (A = VV VH, B = B02 B03 B04 B08 B11, C = NDVI NDSI NDWI, D = elevation) or a comma "
                   "list [default: ABCD, or the --init model's bands].")
@click.option("--recipe", "recipe_name", default=None, type=click.Choice(["cpu", "paper", "finetune"]),
              help="Training recipe [default: cpu, or finetune with --init]; the options below override it.")
@click.option("--epochs", type=int, default=None, help="Epochs at most [recipe's].")
@click.option("--time-limit", type=float, default=None, help="Minutes of training at most [recipe's].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Checkpoint to write (best epoch).")
@click.option("--chip", type=int, default=None, help="Chip side in pixels [recipe's].")
@click.option("--batch-size", type=int, default=None, help="[recipe's]")
@click.option("--lr", type=float, default=None, help="Peak learning rate [recipe's].")
@click.option("--val-fraction", type=float, default=None, help="Share of the area held out [recipe's].")
@click.option("--seed", default=0, show_default=True)
@click.option("--resolution", type=float, default=None, help="Pixel size in metres [10, or the --init model's].")
@click.option("--max-cloud", type=float, default=None, help="Maximum scene cloud cover (percent).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option("--no-cache", is_flag=True, help="Keep the training raster in memory instead of beside --out.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run of --out.")
@click.option("--overwrite", is_flag=True, help="Replace --out and its run.")
def train_command(stac, bbox, datetime_, outlines, arch, init, preset, bands, recipe_name, epochs, time_limit, out,
                  chip, batch_size, lr, val_fraction, seed, resolution, max_cloud, device, no_cache, resume,
                  overwrite) -> None:
    """Train a model on a region's imagery with glacier outlines as labels; write the best checkpoint.

    With no option beyond the region the "cpu" recipe trains from scratch in about 12 minutes on
    two CPU cores; --init fine-tunes a trained model (the RGI workflow: train on the last
    inventory, map the new year).
    """
    import warnings

    import geopandas as gpd
    import torch

    import glacierxr.models as gm
    from glacierxr.errors import InvalidArgumentError, TrainingFailedWarning
    from glacierxr.geo import validate_bbox
    from glacierxr.search import validate_datetime
    from glacierxr.training import fit, recipe
    from glacierxr.training.fit import check_run

    # every option is checked before anything is searched, read or written
    the_recipe = recipe(recipe_name or ("finetune" if init else "cpu"), epochs=epochs, chip=chip,
                        batch_size=batch_size, lr=lr, val_fraction=val_fraction,
                        time_limit=None if time_limit is None else time_limit * 60)
    validate_bbox(bbox)
    validate_datetime(datetime_)
    check_run(out, resume=resume, overwrite=overwrite)
    labels = gpd.read_file(outlines)
    if labels.empty or labels.crs is None:
        raise InvalidArgumentError(f"--outlines {outlines} holds no polygon or has no CRS; pass glacier outlines.")
    torch.manual_seed(seed)
    if init:
        model = gm.load(init)
        if bands is not None and tuple(_parse_bands(bands)) != tuple(model.bands):
            model = gm.with_bands(model, _parse_bands(bands))
        resolution = resolution or gm.inputs.model_resolution(model)
        gm.inputs.check_resolution(model, resolution)
    else:
        model = gm.create(arch, bands=_parse_bands(bands or "ABCD"), preset=preset)
        resolution = resolution or 10.0
    cube = _cube_for(stac, bbox, datetime_, model.bands, max_cloud, resolution, 1024)
    click.echo(f"train      {model.arch} ({model.preset}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
               f"parameters){' from ' + str(init) if init else ''} on {', '.join(model.bands)}; recipe "
               f"{the_recipe.name}: at most {the_recipe.epochs} epochs"
               + (f" or {the_recipe.time_limit / 60:g} min" if the_recipe.time_limit else ""), err=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrainingFailedWarning)
        hist = fit(cube, labels, model, out=out, recipe=the_recipe, seed=seed, cache=not no_cache, device=device,
                   resume=resume, overwrite=overwrite, provenance={"data": {"stac": stac, "bbox": list(bbox),
                                                                            "datetime": datetime_,
                                                                            "outlines": str(outlines)}})
    best = max(hist, key=lambda h: h["miou"] if h["miou"] is not None else -h["train_loss"])
    click.echo(f"best epoch {best['epoch']} of {len(hist)} ({hist[-1].get('stopped', 'epochs')}): train loss "
               f"{best['train_loss']:.4f}"
               + (f", validation OA {best['oa']:.3f} F1 {best['f1_glacier']:.3f} mIoU {best['miou']:.3f}"
                  if best["miou"] is not None else ""))
    click.echo(f"wrote      {out}")
    failed = [w for w in caught if issubclass(w.category, TrainingFailedWarning)]
    for w in caught:
        if w not in failed:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if failed:
        click.echo(f"warning: {failed[0].message}", err=True)
        raise SystemExit(3)


@main.command("evaluate")
@_STAC
@_BBOX
@_DATETIME
@click.option("--model", required=True, help="band-ratio, a shipped checkpoint (lgt-lgcb.synth-s2) or a checkpoint path.")
@click.option("--reference", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Reference glacier outlines (any vector file, any CRS).")
@click.option("--json", "as_json", is_flag=True, help="Print every metric as JSON.")
@click.option("--resolution", type=float, default=None, help="Pixel size in metres [the model's, else 10].")
@click.option("--chunk", default=1024, show_default=True)
@click.option("--window", default=512, show_default=True, help="Prediction window side in pixels.")
@click.option("--tile", type=int, default=None, hidden=True, help="Deprecated alias of --window.")
@click.option("--overlap", default=64, show_default=True)
@click.option("--max-cloud", type=float, default=None)
def evaluate_command(stac, bbox, datetime_, model, reference, as_json, resolution, chunk, window, tile, overlap,
                     max_cloud) -> None:
    """Map glaciers with a model and score the map against reference outlines (OA, F1, IoU, mIoU, boundaries)."""
    import glacierxr as gx
    from glacierxr.models.inputs import check_resolution, model_resolution
    from glacierxr.models.resolve import resolve

    window = _window_option(window, tile)
    the_model = resolve(model)
    resolution = resolution or model_resolution(the_model)
    check_resolution(the_model, resolution)
    cube = _cube_for(stac, bbox, datetime_, the_model.bands, max_cloud, resolution, chunk)
    prob = cube.glacier.predict(the_model, window=min(window, chunk), overlap=overlap)
    scores = gx.evaluate(prob, reference)
    if as_json:
        click.echo(json.dumps(scores, indent=1))
        return
    click.echo(f"model      {the_model.arch} on {', '.join(the_model.bands)}")
    click.echo(f"pixels     {scores['n_pixels']:,} scored, {scores['n_excluded']:,} without data")
    _report_accuracy(scores)
    click.echo(f"F1         glacier {scores['f1']['glacier']:.3f}  background {scores['f1']['background']:.3f}")


@main.command("experiment")
@click.option("--config", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML file: regions, models, band combinations, seeds (see glacierxr.training.experiment).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for results.jsonl and tables.md; finished runs in it are not run again.")
@click.option("--quiet", is_flag=True)
def experiment_command(config: Path, out_dir: Path, quiet: bool) -> None:
    """Run a grid of models x band combinations x seeds and print the paper-style Markdown tables."""
    from glacierxr.training import run_experiment

    click.echo(run_experiment(config, out_dir, progress=not quiet))


if __name__ == "__main__":  # pragma: no cover
    main()
