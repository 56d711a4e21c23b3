"""A 96-well x 4-site x 2-channel plate stored one file per channel (ImageXpress
style), with a sample sheet, through the real workflow: checks that every image
is analysed and that well, site and condition reach every table row, and prints
the wall time.

    .venv/bin/python benchmarks/plate.py [--wells 96] [--sites 4] [--size 96] [--cores 2]
"""

from __future__ import annotations

import argparse
import os
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


def well_names(n: int) -> list[str]:
    rows, cols = ("ABCDEFGH", 12) if n <= 96 else ("ABCDEFGHIJKLMNOP", 24)
    return [f"{r}{c:02d}" for r in rows for c in range(1, cols + 1)][:n]


def write_plate(folder: Path, *, wells: int, sites: int, size: int, seed: int = 0) -> list[str]:
    """Nuclei (w1) and a reporter (w2) per well and site; returns the well names."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    names = well_names(wells)
    for w, well in enumerate(names):
        for site in range(1, sites + 1):
            nuc = np.full((size, size), 100.0)
            rep = np.full((size, size), 100.0)
            for _ in range(max(2, size // 24)):
                cy, cx = rng.uniform(10, size - 10, 2)
                r2 = (yy - cy) ** 2 + (xx - cx) ** 2
                nuc[r2 <= 36] = 800
                rep[r2 <= 100] = 300 + 100 * (w % 2)  # drug wells: more cytoplasmic reporter
                rep[r2 <= 36] = 200
            for channel, img in (("w1", nuc), ("w2", rep)):
                noisy = np.clip(img + rng.normal(0, 10, img.shape), 0, 65535).astype(np.uint16)
                tifffile.imwrite(folder / f"{well}_s{site}_{channel}.tif", noisy)
    rows = [(well, "control" if i % 2 == 0 else "drug", str(i % 4)) for i, well in enumerate(names)]
    pd.DataFrame(rows, columns=["well", "condition", "replicate"]).to_csv(folder / "samples.tsv", sep="\t",
                                                                           index=False)
    return names


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wells", type=int, default=96)
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--size", type=int, default=96, help="image side in px")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="snakescope-plate-") as tmp:
        tmp = Path(tmp)
        plate = tmp / "plate1"
        plate.mkdir()
        wells = write_plate(plate, wells=args.wells, sites=args.sites, size=args.size)
        config = {"figures": {"group_by": "condition", "formats": ["png"], "qc_frames": ["first"]},
                  "datasets": {"plate1": {"images": str(plate / "{well}_s{site}_{channel}.tif"),
                                          "channels": {"w1": "nucleus", "w2": "erk"},
                                          "samples": str(plate / "samples.tsv"),
                                          "segment": {"channel": "nucleus", "diameter": "12px"}}}}
        (tmp / "config.yaml").write_text(yaml.safe_dump(config))
        cmd = [str(Path(sys.executable).parent / "snakemake"), "all", "--snakefile", str(ROOT / "Snakefile"),
               "--directory", str(tmp), "--cores", str(args.cores), "--quiet", "--configfile",
               str(tmp / "config.yaml")]
        start = time.perf_counter()
        result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            print((result.stdout + result.stderr)[-3000:])
            return 1
        objects = pd.read_csv(tmp / "results/plate1/tables/objects.csv", dtype=str)
        images = pd.read_csv(tmp / "results/plate1/tables/images.csv", dtype=str)
        expected = {f"{w}_s{s}" for w in wells for s in range(1, args.sites + 1)}
        missing = expected - set(images["image"])
        empty_meta = int((objects[["meta_well", "meta_site", "meta_condition"]] == "").any(axis=1).sum())
        figures = sorted(p.name for p in (tmp / "results/plate1/figures/dataset").glob("*.png"))
        print(f"plate: {args.wells} wells x {args.sites} sites x 2 channels = {2 * len(expected)} files, "
              f"{len(expected)} images of {args.size}^2 px, {os.cpu_count()} CPUs, --cores {args.cores}")
        print(f"images analysed: {images['image'].nunique()} of {len(expected)} (missing: {len(missing)})")
        print(f"object rows: {len(objects)}, rows without well/site/condition: {empty_meta}")
        print(f"conditions in images.csv: {sorted(images['meta_condition'].unique())}")
        print(f"dataset figures: {len(figures)} ({', '.join(figures[:4])}, ...)")
        print(f"wall time: {wall:.1f} s ({wall / len(expected) * 1000:.0f} ms per image)")
        return 0 if not missing and empty_meta == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
