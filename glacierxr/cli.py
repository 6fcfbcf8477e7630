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
    """Report GlacierxrError as one line on stderr with exit code 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GlacierxrError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


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


@main.command()
@click.option("--out", "out_dir", default="demo-output", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", default=1024, show_default=True, help="Rows and columns of the embedded region.")
@click.option("--seed", default=0, show_default=True)
def demo(out_dir: Path, size: int, seed: int) -> None:
    """Run glacierxr on the embedded synthetic region, end to end, offline."""
    import geopandas as gpd
    import xarray as xr

    import glacierxr as gx
    from glacierxr.quicklook import quicklook
    from glacierxr.stac_server import serve
    from glacierxr.synthetic import make_region

    t0 = time.perf_counter()
    region = make_region(out_dir / "region", seed=seed, shape=(size, size))
    click.echo(f"region     {region.name}: {size} x {size} px at 10 m, {region.crs}, {region.datetime}")
    with serve(region.stac_dir) as url:
        click.echo(f"STAC API   {url} (rustac serve)")
        items = gx.search(url, bbox=region.bbox, datetime=region.datetime, max_cloud=50)
        click.echo("search     " + ", ".join(f"{k}: {len(v)} items" for k, v in items.items()))
        cube = gx.open_cube(items, bbox=region.bbox, resolution=10)
        click.echo(f"cube       {dict(cube.sizes)} variables {list(cube.data_vars)} (lazy)")
        model = gx.models.create("band-ratio", bands=["B03", "B04", "B08", "B11"])
        prob = cube.glacier.predict(model, tile=512, overlap=64)
        store = prob.glacier.to_zarr(out_dir / "probability.zarr", mode="w")
        written = xr.open_zarr(store)["glacier_probability"]
        glacier = float((written > 0.5).sum() / written.notnull().sum())
        truth_share = float(region.arrays["glacier"].mean())
        click.echo(f"predict    {model.arch}: {glacier:.1%} of valid pixels above p=0.5 (true glacier cover "
                   f"{truth_share:.1%}) -> {store}")
        truth = gpd.read_file(region.truth_path)
        outlines = written.rio.write_crs(cube.rio.crs).glacier.outlines(min_area_km2=0.05)
        inv = gx.inventory(outlines, cube["elevation"], date=region.dates[-1].date().isoformat(),
                           dem_source="synthetic GLO-30", probability=written)
        gx.write_inventory(inv, out_dir / "outlines.parquet")
        gx.write_inventory(inv, out_dir / "outlines.gpkg")
        inv.drop(columns="geometry").to_csv(out_dir / "inventory.csv", index=False)
        click.echo(f"outlines   {len(inv)} glaciers >= 0.05 km^2, {inv.area_km2.sum():.2f} km^2 in total")
        if len(truth) == 0:
            click.echo("accuracy   the region has no true glacier to score against")
        else:
            _report_accuracy(gx.evaluate(written.rio.write_crs(cube.rio.crs), truth))
        png = quicklook(cube, out_dir / "quicklook.png", outlines=outlines)
    click.echo(f"outputs    {png} (outlines in yellow)\n           {store}\n           {out_dir / 'outlines.parquet'}, "
               f"{out_dir / 'outlines.gpkg'}, {out_dir / 'inventory.csv'}\n"
               f"           truth {region.truth_path}; STAC {region.stac_dir}")
    click.echo(f"done in {time.perf_counter() - t0:.1f} s")


def _report_accuracy(scores: dict) -> None:
    click.echo(f"accuracy   vs true outlines: OA {scores['oa']:.3f}  glacier IoU {scores['iou']['glacier']:.3f}  "
               f"mIoU {scores['miou']:.3f}  mean F1 {scores['mean_f1']:.3f}  "
               f"boundary mean {scores['boundary_mean_m']:.1f} m / p95 {scores['boundary_p95_m']:.1f} m")


def _describe(region) -> dict:
    return {
        "name": region.name, "bbox": list(region.bbox), "datetime": region.datetime, "crs": region.crs,
        "shape": list(region.shape), "stac_dir": str(region.stac_dir), "truth_path": str(region.truth_path),
        "items": region.collections,
    }


if __name__ == "__main__":  # pragma: no cover
    main()
