"""The full workflow on the real KTR movie (27 frames, 3 channels, 1024^2, ~900 nuclei).

Runs segmentation, measurement, rings, tracking, traces and figures with
``--cores 2`` from a clean results directory, prints the wall time, the
per-rule times and peak memory from the benchmark records the workers write,
and the ratio to CellProfiler 5's time on the same movie on this machine
(168 s wall, the authors' KTR pipeline; measured once, see benchmarks/README.md:
CellProfiler is not installed here, so that number is an anchor, not a run).

Usage: .venv/bin/python benchmarks/ktr_real.py [--movie ../shared/data/ktr-goedhart/ktr_timelapse.tif]
       [--cores 2] [--no-figures]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import yaml

ROOT = Path(__file__).resolve().parents[1]
CELLPROFILER_S = 168.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--movie", default=str(ROOT.parent / "shared/data/ktr-goedhart/ktr_timelapse.tif"))
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--no-figures", action="store_true", help="skip QC images and figures")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    movie = Path(args.movie).resolve()
    if not movie.exists():
        raise SystemExit(f"{movie}: not found; pass --movie")

    config = yaml.safe_load((ROOT / "config/examples/ktr_goedhart.yaml").read_text())
    ds = config["datasets"]["ktr_goedhart"]
    ds["images"] = str(movie.parent / "{image}.tif")
    work = Path(tempfile.mkdtemp(prefix="snakescope-ktr-"))
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(work), "--configfile", str(work / "config.yaml"), "--cores", str(args.cores),
           "--quiet"]
    if args.no_figures:
        targets = [f"results/ktr_goedhart/{p}" for p in ("tables/traces.csv", "tables/objects.csv")]
        cmd += targets
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        print(proc.stdout[-2000:], proc.stderr[-3000:])
        raise SystemExit("workflow failed")

    rows = []
    for tsv in sorted((work / "results/ktr_goedhart/benchmarks").rglob("*.tsv")):
        rec = pd.read_csv(tsv, sep="\t").iloc[0]
        rule = tsv.parent.name if tsv.parent.name != "benchmarks" else tsv.stem
        rows.append({"rule": rule, "s": rec["s"], "cpu_s": rec["cpu_time"], "max_rss_mb": rec["max_rss"]})
    table = pd.DataFrame(rows).sort_values("s", ascending=False)
    traces = pd.read_csv(work / "results/ktr_goedhart/tables/traces.csv")
    n_frames = traces["frame"].nunique()
    full = int((traces.groupby(["image", "track_id"])["frame"].nunique() == n_frames).sum())
    images = pd.read_csv(work / "results/ktr_goedhart/tables/images.csv")

    print(f"movie: {movie} ({n_frames} frames)")
    print(f"workflow wall time (--cores {args.cores}{', no figures' if args.no_figures else ''}): {wall:.1f} s")
    print(f"per-rule times (worker benchmark records):\n{table.to_string(index=False)}")
    by_rule = dict(zip(table.rule, table.s))
    chain = sum(by_rule.get(r, 0) for r in ("smooth", "threshold", "refine", "label", "track", "dataset_figures"))
    chain += max(by_rule.get("measure", 0), by_rule.get("rings", 0), by_rule.get("qc", 0))
    print(f"sum of step times: {table.s.sum():.1f} s; critical path of the chain (one movie is a serial "
          f"chain: smooth > threshold > refine > label > measure|rings|qc > track > figures): {chain:.1f} s; "
          f"the rest of the wall time is Snakemake (start-up, DAG, job hand-over, tables/traces jobs)")
    print(f"objects per frame: {images.n_objects.min()}-{images.n_objects.max()}; tracks spanning all "
          f"{n_frames} frames: {full}")
    print("median ERK C/N per frame: " + ", ".join(f"{v:.3f}" for v in images["median_cn_erk"]))
    stack_mb = int(np.prod(tifffile.TiffFile(movie).series[0].shape)) * 2 / 2**20
    limit = 4 * stack_mb + 300
    worst = table.sort_values("max_rss_mb").iloc[-1]
    print(f"memory: input stack {stack_mb:.0f} MiB -> limit 4 x stack + 300 = {limit:.0f} MiB; "
          f"largest step peak RSS {worst.max_rss_mb:.0f} MiB ({worst.rule}): "
          f"{'OK' if worst.max_rss_mb <= limit else 'OVER'}")
    print(f"CellProfiler 5 anchor {CELLPROFILER_S:.0f} s / snakescope {wall:.1f} s = {CELLPROFILER_S / wall:.1f}x "
          "(target >= 8x, wall <= 21 s)")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
