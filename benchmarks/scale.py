"""Scale of the orchestration: dry run of a large screen, no-op rerun of a finished run.

Targets (issue "Batched execution"): a dry run (``snakemake -n``) of 100,000
images in ``execution: batched`` mode in <= 60 s and <= 2 GB peak RSS; a no-op
rerun (everything up to date) in <= 60 s.

The screen is N tiny 32x32 single-frame stills (the bytes of one TIFF written N
times: the cost measured is Snakemake's and the workflow's, not the images'),
dataset ``track: {enabled: false}``, figures at their defaults (QC images for a
stable sample of ``figures.qc_images`` = 200 images, dataset figures). Every
run is a fresh ``snakemake`` process on a temporary folder (``--directory``),
with the workflow profile, ``--cores C``; the mode is set the way a user sets
it, ``--config 'execution={mode: ..., batch_size: ...}'``.

Measured, one line each (wall time of the whole ``snakemake`` command, peak RSS
of its largest process from GNU time, jobs Snakemake planned, 1-min load average
before / after):

1. dry run of N images (default 100,000) in ``--mode`` (default batched): the
   whole workflow (``all``) planned from scratch (no outputs exist);
2. the same dry run in per_step mode at ``--per-step-images`` (default 10,000),
   for comparison (one job per image and step);
3. what ``track: {enabled: auto}`` costs at DAG time (it reads every image's
   header to find the movies): dry runs of ``--header-images`` images (default
   10,000) with ``auto`` and with ``false``; the difference is the header
   reading. The files were just written, so their headers come from the page
   cache: a cold network file system costs more;
4. no-op rerun: a real run of the whole workflow on ``--noop-images`` images
   (default 2,000; several sizes allowed) in ``--mode``, then ``snakemake``
   again on the finished folder, ``--noop-repeat`` times (median and every
   value), checked to have run no job. Only sizes actually run are reported;
   nothing is extrapolated.

Usage: .venv/bin/python benchmarks/scale.py [--images 100000] [--mode batched]
       [--per-step-images 10000] [--header-images 10000] [--noop-images 2000 10000]
       [--batch-size 100] [--cores 2] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
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


def load() -> float:
    return os.getloadavg()[0]


def make_images(folder: Path, n: int) -> float:
    """``n`` copies of one tiny still (``im000000.tif`` ...); returns seconds taken."""
    t0 = time.perf_counter()
    folder.mkdir(parents=True)
    img = np.full((32, 32), 100, np.uint16)
    img[8:20, 8:20] = 900
    tifffile.imwrite(folder / "im000000.tif", img)
    data = (folder / "im000000.tif").read_bytes()
    for i in range(1, n):
        (folder / f"im{i:06d}.tif").write_bytes(data)
    return time.perf_counter() - t0


def write_config(work: Path, data: Path, track: str | bool = False) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    cfg = {"datasets": {"scale": {"images": str(data / "{image}.tif"), "segment": {"diameter": "8px"},
                                  "track": {"enabled": track}}}}
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class Result:
    def __init__(self, wall: float, rss_mb: float, jobs: str, load0: float, load1: float,
                 proc: subprocess.CompletedProcess):
        self.wall, self.rss_mb, self.jobs, self.load0, self.load1, self.proc = wall, rss_mb, jobs, load0, load1, proc


def snakemake(work: Path, mode: str, batch_size: int, cores: int, *args: str) -> Result:
    """One ``snakemake`` command on ``work``; wall time, peak RSS, planned jobs."""
    execution = f"execution={{mode: {mode}, batch_size: {batch_size}}}"
    cmd = ["/usr/bin/time", "-f", "peak-rss-kb %M", SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(work), "--cores", str(cores), *args, "--configfile", str(work / "config.yaml"),
           "--config", execution, "--quiet", "rules", "host", "reason"]
    load0 = load()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    load1 = load()
    rss = re.findall(r"peak-rss-kb (\d+)", proc.stderr)
    rss_mb = float(rss[-1]) / 1024 if rss else float("nan")
    out = proc.stdout + proc.stderr
    total = re.findall(r"^total\s+(\d+)\s*$", out, flags=re.M)
    jobs = total[0] if total else ("0" if "Nothing to be done" in out else "?")
    if proc.returncode:
        print(f"FAILED ({proc.returncode}): {' '.join(cmd[3:])}\n{out[-3000:]}", flush=True)
    return Result(wall, rss_mb, jobs, load0, load1, proc)


ROWS: list[tuple[str, ...]] = []


def row(what: str, mode: str, images: int, r: Result | None, target: str, *, wall: str | None = None) -> None:
    cells = (what, mode, f"{images:,}", r.jobs if r else "", wall if wall is not None else f"{r.wall:.1f}",
             f"{r.rss_mb:,.0f}" if r else "", target, f"{r.load0:.2f} / {r.load1:.2f}" if r else "")
    ROWS.append(cells)
    print("  " + " | ".join(cells), flush=True)


def print_table() -> None:
    head = ("measurement", "mode", "images", "jobs", "wall s", "peak RSS MB", "target", "load 1-min before / after")
    widths = [max(len(r[i]) for r in [head, *ROWS]) for i in range(len(head))]
    print()
    for r in [head, tuple("-" * w for w in widths), *ROWS]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")


def git_version() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "Snakefile", "workflow",
                                "snakescope"], capture_output=True, text=True).stdout.strip()
        return head + (" + uncommitted changes to the workflow/library" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


#: Rule -> step of the DAG, for the modification times of faked outputs (a file
#: must be newer than the files it is made from).
_LEVEL = {"tables": 2, "qc": 2, "ctc_export": 2, "traces": 3, "dataset_figures": 4}
#: Rules whose outputs are folders.
_FOLDERS = {"qc", "dataset_figures", "ctc_export"}


def fake_outputs(work: Path, mode: str, batch_size: int, cores: int) -> float:
    """Create every output of the workflow on ``work`` empty (folders for folder
    outputs), each newer than its inputs, as after a finished run; seconds taken."""
    t0 = time.perf_counter()
    cmd = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--cores", str(cores),
           "--summary", "--configfile", str(work / "config.yaml"),
           "--config", f"execution={{mode: {mode}, batch_size: {batch_size}}}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    start = time.time() + 1
    for line in proc.stdout.splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) < 3 or parts[2] == "all":
            continue
        path, rule = work / parts[0], parts[2]
        level = 1 if rule.startswith("batch_") else _LEVEL.get(rule, 1)
        if rule in _FOLDERS:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        os.utime(path, (start + level, start + level))
    return time.perf_counter() - t0


def noop_reruns(work: Path, n: int, args: argparse.Namespace, what: str) -> None:
    """``args.noop_repeat`` reruns of a finished workflow on ``work`` (``n``
    images), each checked to plan nothing, and their median."""
    walls = []
    for _ in range(args.noop_repeat):
        r = snakemake(work, args.mode, args.batch_size, args.cores)
        out = r.proc.stdout + r.proc.stderr
        if r.proc.returncode or "Nothing to be done" not in out:
            print(f"NOT a no-op: the rerun planned {r.jobs} job(s):\n{out[-3000:]}")
        walls.append(r.wall)
        row(what, args.mode, n, r, "<= 60 s")
    row(f"  -> no-op rerun, median of {len(walls)} ({', '.join(f'{w:.1f}' for w in walls)})", args.mode,
        n, None, "<= 60 s", wall=f"{statistics.median(walls):.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=100_000, help="dry run of this many images in --mode (0: skip)")
    ap.add_argument("--mode", choices=("batched", "per_step"), default="batched",
                    help="execution.mode of the large dry run and the no-op rerun")
    ap.add_argument("--batch-size", type=int, default=100, help="execution.batch_size")
    ap.add_argument("--per-step-images", type=int, default=10_000,
                    help="per_step dry run for comparison (0: skip)")
    ap.add_argument("--header-images", type=int, default=10_000,
                    help="dry runs with track auto vs false: cost of reading headers (0: skip)")
    ap.add_argument("--noop-images", type=int, nargs="*", default=[2_000],
                    help="sizes of the real run + no-op rerun (none: skip)")
    ap.add_argument("--noop-repeat", type=int, default=3, help="no-op reruns per size")
    ap.add_argument("--fake-noop-images", type=int, default=0,
                    help="no-op rerun of this many images whose outputs are created empty by this script "
                         "(every file --summary lists, newer than its inputs), not computed: measures "
                         "Snakemake's up-to-date check at a scale no real run here reaches (0: skip)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None, help="parent of the temporary folder (default: system temp)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="snakescope-scale-", dir=args.workdir))
    print(f"workflow {ROOT} at {git_version()}; snakemake --cores {args.cores}; {os.cpu_count()} CPUs; "
          f"temp {base}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({'quiet' if load() < 0.5 else 'NOT quiet: other processes are running'})")
    folders: dict[int, Path] = {}

    def images(n: int) -> Path:
        if n not in folders:
            folders[n] = base / f"data{n}"
            secs = make_images(folders[n], n)
            print(f"  (wrote {n:,} tiny TIFFs in {secs:.1f} s)", flush=True)
        return folders[n]

    try:
        if args.images:
            work = base / f"dry-{args.mode}-{args.images}"
            write_config(work, images(args.images))
            r = snakemake(work, args.mode, args.batch_size, args.cores, "-n")
            row("dry run (-n), whole workflow", args.mode, args.images, r,
                "<= 60 s, <= 2,048 MB" if args.mode == "batched" and args.images >= 100_000 else "")
        if args.per_step_images:
            work = base / f"dry-per_step-{args.per_step_images}"
            write_config(work, images(args.per_step_images))
            r = snakemake(work, "per_step", args.batch_size, args.cores, "-n")
            row("dry run (-n), whole workflow", "per_step", args.per_step_images, r, "(comparison)")
        if args.header_images:
            n = args.header_images
            walls = {}
            for track in (False, "auto"):
                work = base / f"dry-track-{track}-{n}"
                write_config(work, images(n), track=track)
                r = snakemake(work, args.mode, args.batch_size, args.cores, "-n")
                walls[track] = r.wall
                row(f"dry run (-n), track.enabled {str(track).lower()}", args.mode, n, r, "")
            row("  -> reading every header at DAG time (auto - false, warm page cache)", args.mode, n, None, "",
                wall=f"{walls['auto'] - walls[False]:.1f}")
        for n in args.noop_images:
            work = base / f"noop-{n}"
            write_config(work, images(n))
            r = snakemake(work, args.mode, args.batch_size, args.cores)
            row("real run, whole workflow (set-up of the no-op)", args.mode, n, r, "")
            if r.proc.returncode:
                raise SystemExit("real run failed")
            noop_reruns(work, n, args, "no-op rerun")
        if args.fake_noop_images:
            n = args.fake_noop_images
            work = base / f"fake-noop-{n}"
            write_config(work, images(n))
            secs = fake_outputs(work, args.mode, args.batch_size, args.cores)
            print(f"  (created the outputs of {n:,} images, empty, in {secs:.1f} s)", flush=True)
            noop_reruns(work, n, args, "no-op rerun (outputs created empty)")
    finally:
        print_table()
        print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
