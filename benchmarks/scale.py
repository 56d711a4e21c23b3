"""Scale of the orchestration: dry-run of many images, no-op rerun of a finished run.

1. Dry-run (``snakemake -n``) of the full workflow on N tiny images (default
   10,000): wall time and peak memory (target <= 60 s, <= 2 GB).
2. No-op rerun of a completed run of M tiny images (default 1,000): wall time of
   ``snakemake`` when everything is up to date (target <= 30 s).

Tracking is off and figures are skipped for the no-op case's first (real) run
to keep its set-up short; the dry-run plans every rule.

Usage: .venv/bin/python benchmarks/scale.py [--dry-images 10000] [--noop-images 1000]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def make_images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    img = np.full((32, 32), 100, np.uint16)
    img[8:20, 8:20] = 900
    tifffile.imwrite(folder / "im00000.tif", img)
    data = (folder / "im00000.tif").read_bytes()
    for i in range(1, n):
        (folder / f"im{i:05d}.tif").write_bytes(data)


def run(work: Path, *args: str) -> tuple[float, float, subprocess.CompletedProcess]:
    cmd = ["/usr/bin/time", "-f", "%M", SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", "2", *args, "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    rss_mb = float(proc.stderr.strip().splitlines()[-1]) / 1024 if proc.stderr.strip() else float("nan")
    return wall, rss_mb, proc


def config(folder: Path) -> dict:
    return {"datasets": {"scale": {"images": str(folder / "{image}.tif"), "segment": {"diameter": "8px"},
                                   "track": {"enabled": False}}}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-images", type=int, default=10_000)
    ap.add_argument("--noop-images", type=int, default=1_000)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="snakescope-scale-"))
    try:
        if args.dry_images:
            work = base / "dry"
            make_images(work / "data", args.dry_images)
            (work / "config.yaml").write_text(yaml.safe_dump(config(work / "data")))
            wall, rss, proc = run(work, "-n")
            if proc.returncode:
                print(proc.stdout[-2000:], proc.stderr[-2000:])
            jobs = [line for line in proc.stdout.splitlines() if line.strip().startswith("total")]
            print(f"dry-run of {args.dry_images} images: {wall:.1f} s, peak RSS {rss:.0f} MB "
                  f"({jobs[0].split()[-1] if jobs else '?'} jobs)  [target <= 60 s, <= 2048 MB]")
        if args.noop_images:
            work = base / "noop"
            make_images(work / "data", args.noop_images)
            (work / "config.yaml").write_text(yaml.safe_dump(config(work / "data")))
            targets = ["--until", "tables"]  # segmentation, measurement, rings, tables (no figures)
            t0 = time.perf_counter()
            wall, rss, proc = run(work, *targets)
            if proc.returncode:
                print(proc.stdout[-2000:], proc.stderr[-2000:])
                raise SystemExit("real run failed")
            print(f"first run of {args.noop_images} images (tables only): {wall:.1f} s")
            wall, rss, proc = run(work, *targets)
            print(f"no-op rerun of {args.noop_images} images: {wall:.1f} s, peak RSS {rss:.0f} MB  [target <= 30 s]")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
