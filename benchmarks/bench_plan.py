"""Benchmark `glacierxr plan` (and a full paged `gx.search`) at mountain-range scale.

Writes metadata-only Earth Search v1 catalogues (:mod:`glacierxr.testing.metadata`) for the
Karakoram (~600 km) and High Mountain Asia, serves each with ``rustac serve``
(:func:`glacierxr.stac_server.serve`) and runs, as a subprocess,
``glacierxr plan --stac URL --bbox W S E N --datetime ... --tile-km 100 --json``, measuring its
wall time and peak RSS (``RUSAGE_CHILDREN`` of a fresh helper process per run). The plan command
prints one JSON object with the keys ``tiles, epsg, km2, items, max_tasks_per_tile, tile_km``.
``--search`` also times a plain, full paged ``gx.search`` (Sentinel-2 + DEM) in a subprocess.

Usage::

    .venv/bin/python benchmarks/bench_plan.py                 # both regions, plan + search
    .venv/bin/python benchmarks/bench_plan.py --regions karakoram --no-plan
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from glacierxr.stac_server import serve
from glacierxr.testing.metadata import HMA_BBOX, KARAKORAM_BBOX, write_catalog

REGIONS = {"karakoram": KARAKORAM_BBOX, "hma": HMA_BBOX}
WHEN = "2023-07-15/2023-09-30"
KEYS = ("tiles", "epsg", "km2", "items", "max_tasks_per_tile", "tile_km")

# Runs a command and reports its wall time and peak RSS (the grandchild's, via RUSAGE_CHILDREN).
_MEASURE = r"""
import json, resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"rc": p.returncode, "wall_s": wall, "peak_rss_bytes": rss, "stdout": p.stdout, "stderr": p.stderr[-3000:]}))
"""

_SEARCH = r"""
import json, sys, glacierxr as gx
url, w, s, e, n, when = sys.argv[1], *map(float, sys.argv[2:6]), sys.argv[6]
items = gx.search(url, bbox=(w, s, e, n), datetime=when, sensors=("sentinel-2", "dem"))
print(json.dumps({k: len(v) for k, v in items.items()}))
"""


def measure(cmd: list[str]) -> dict:
    """Run ``cmd`` in a fresh measuring process; wall seconds, peak RSS bytes, rc, stdout, stderr."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _exe() -> str:
    exe = Path(sys.executable).with_name("glacierxr")
    return str(exe) if exe.exists() else "glacierxr"


def bench_region(name: str, bbox, root: Path, *, plan: bool = True, search: bool = True) -> list[dict]:
    """Write, serve and benchmark one region; one row per measured command."""
    info = write_catalog(root / name, bbox, WHEN)
    rows = []
    base = {"region": name, "bbox": " ".join(f"{v:g}" for v in bbox), "write_s": info["seconds"],
            "catalog_items": sum(info["counts"].values())}
    with serve(root / name, timeout=120) as url:
        if search:
            r = measure([sys.executable, "-c", _SEARCH, url, *map(str, bbox), WHEN])
            row = {**base, "command": "gx.search", "wall_s": r["wall_s"], "peak_rss_gb": r["peak_rss_bytes"] / 1e9}
            if r["rc"] == 0:
                row["items"] = sum(json.loads(r["stdout"].strip().splitlines()[-1]).values())
            else:
                row["error"] = r["stderr"].strip().splitlines()[-1:] or ["failed"]
            rows.append(row)
        if plan:
            cmd = [_exe(), "plan", "--stac", url, "--bbox", *map(str, bbox), "--datetime", WHEN,
                   "--tile-km", "100", "--json"]
            r = measure(cmd)
            row = {**base, "command": "glacierxr plan", "wall_s": r["wall_s"], "peak_rss_gb": r["peak_rss_bytes"] / 1e9}
            if r["rc"] == 0:
                try:
                    result = json.loads(r["stdout"].strip().splitlines()[-1])
                    row.update({k: result.get(k) for k in KEYS})
                except (json.JSONDecodeError, IndexError):
                    row["error"] = "no JSON object on stdout"
            else:
                row["error"] = (r["stderr"].strip().splitlines() or ["failed"])[-1]
            rows.append(row)
    return rows


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    if isinstance(v, list):
        return ",".join(map(str, v))
    return "" if v is None else str(v)


def table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table."""
    cols = ["region", "command", "wall_s", "peak_rss_gb", *KEYS, "write_s", "catalog_items", "error"]
    cols = [c for c in cols if any(c in r for r in rows)]
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True))  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths]), *(line(x) for x in cells)])


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regions", nargs="+", choices=sorted(REGIONS), default=["karakoram", "hma"])
    ap.add_argument("--no-plan", action="store_true", help="skip `glacierxr plan`")
    ap.add_argument("--no-search", action="store_true", help="skip the plain gx.search")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = ap.parse_args(argv)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_plan_") as tmp:
        for name in args.regions:
            t0 = time.perf_counter()
            rows += bench_region(name, REGIONS[name], Path(tmp), plan=not args.no_plan, search=not args.no_search)
            print(f"# {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print(table(rows))
    if args.json:
        print(json.dumps(rows, default=str))
    return rows


if __name__ == "__main__":
    main()
