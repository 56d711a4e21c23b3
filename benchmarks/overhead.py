"""Orchestration overhead: the workflow vs a plain multiprocessing loop.

Makes N synthetic 1024x1024 stills (touching bright nuclei on a noisy
background), then measures, on the same machine in one run:

* workflow: ``snakemake --cores C --until label`` on them (smooth -> threshold
  -> refine -> label, one file per step, warm worker pool, workflow profile),
  from a clean results directory;
* loop: ``multiprocessing.Pool(C)`` calling the same step functions
  (``snakescope.steps``) on the same files, writing the same outputs.

Prints both wall times and the ratio workflow / loop (target <= 1.5).

Usage: .venv/bin/python benchmarks/overhead.py [--images 100] [--cores 2] [--size 1024]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
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
sys.path.insert(0, str(ROOT))


def make_image(seed: int, size: int) -> np.ndarray:
    """Touching disks of varied brightness + gradient + noise (uint16)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    img = 100 + 50 * xx / size
    n = int(300 * (size / 1024) ** 2)
    centres = rng.uniform(10, size - 10, (n, 2))
    radii = rng.uniform(7, 12, n)
    bright = rng.uniform(400, 1200, n)
    canvas = np.zeros((size, size), np.float32)
    for (cy, cx), r, b in zip(centres, radii, bright):
        y0, y1 = int(max(cy - r - 1, 0)), int(min(cy + r + 2, size))
        x0, x1 = int(max(cx - r - 1, 0)), int(min(cx + r + 2, size))
        sub = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= r * r
        canvas[y0:y1, x0:x1][sub] = np.maximum(canvas[y0:y1, x0:x1][sub], b)
    img = img + canvas
    img = rng.poisson(img).astype(np.float32) + rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 65535).astype(np.uint16)


SEGMENT = {"diameter": 18}
READING = {"axes": None, "channels": None, "pixel_size_um": None, "frame_interval_s": None}


def one_image(args: tuple[str, str, str, dict]) -> None:
    """The chain of steps for one image, as the workflow's rules run it."""
    from snakescope import steps

    image, name, out, seg = args
    r = f"{out}/results/loop"
    steps.smooth(image=image, smoothed=f"{r}/smooth/{name}.tif", reading=READING,
                 channel=None, diameter=seg["diameter"], smooth=seg["smooth"])
    steps.threshold(smoothed=f"{r}/smooth/{name}.tif", mask=f"{r}/threshold/{name}.tif",
                    table=f"{r}/threshold/{name}.csv", image=name, diameter=seg["diameter"],
                    threshold=seg["threshold"])
    steps.refine(mask=f"{r}/threshold/{name}.tif", refined=f"{r}/refine/{name}.tif",
                 diameter=seg["diameter"], refine=seg["refine"])
    steps.label(mask=f"{r}/refine/{name}.tif", smoothed=f"{r}/smooth/{name}.tif",
                thresholds=f"{r}/threshold/{name}.csv", labels=f"{r}/labels/{name}.tif",
                frames=f"{r}/labels/{name}.csv", name=name, method="threshold", diameter=seg["diameter"],
                split=seg["split"], refine=seg["refine"], log_edges=seg["log_edges"], model=None,
                reading=READING, channel=None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="snakescope-overhead-"))
    data = work / "data"
    data.mkdir()
    t0 = time.perf_counter()
    for i in range(args.images):
        tifffile.imwrite(data / f"img_{i:04d}.tif", make_image(i, args.size))
    print(f"made {args.images} images of {args.size}x{args.size} in {time.perf_counter() - t0:.1f} s")

    config = {"datasets": {"bench": {"images": str(data / "{image}.tif"), "segment": dict(SEGMENT),
                                     "track": {"enabled": False}}}}
    cfg_path = work / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(config))

    # Config with defaults as the workflow sees it (for the loop).
    from snakemake.utils import validate

    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"), set_default=True)
    seg = config["datasets"]["bench"]["segment"]

    env = dict(os.environ)
    cmd = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(work), "--configfile", str(cfg_path), "--cores", str(args.cores), "--quiet", "--until", "label"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wf = time.perf_counter() - t0
    if proc.returncode:
        print(proc.stderr[-3000:])
        raise SystemExit("workflow run failed")
    n_jobs = 4 * args.images

    jobs = [(str(data / f"img_{i:04d}.tif"), f"img_{i:04d}", str(work), seg) for i in range(args.images)]
    ctx = multiprocessing.get_context("forkserver")
    t0 = time.perf_counter()
    with ctx.Pool(args.cores) as pool:
        pool.map(one_image, jobs, chunksize=1)
    loop = time.perf_counter() - t0

    # Same results?
    same = all(
        np.array_equal(tifffile.imread(work / f"results/bench/labels/{n}.tif"),
                       tifffile.imread(work / f"results/loop/labels/{n}.tif"))
        for _, n, _, _ in jobs[:5]
    )
    print(f"workflow ({n_jobs} jobs + all, --cores {args.cores}): {wf:.1f} s")
    print(f"loop (multiprocessing.Pool({args.cores}), same step functions and files): {loop:.1f} s")
    print(f"labels identical (first 5 images): {same}")
    print(f"ratio workflow / loop = {wf / loop:.2f}  (target <= 1.5)")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
