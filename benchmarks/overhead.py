"""Orchestration overhead: the workflow vs a plain multiprocessing loop over the same step functions.

Makes N synthetic 1024x1024 single-channel stills (touching bright nuclei on a
noisy background), then, in one run, on the same machine and cores, measures
per mode (``--mode per_step | batched | both``):

* workflow: one ``snakemake --cores C`` command (workflow profile, firstfit
  scheduler) on the images from an empty results folder (``results/`` and
  ``.snakemake/`` removed before each repeat). The wall time includes
  Snakemake's start-up, DAG build, the warm worker pool's start and every job.

  - per_step (the mode the default profile and config use):
    ``--until measure rings``: per image 6 jobs, smooth -> threshold -> refine
    -> label -> measure -> rings, each reading its inputs from and writing its
    outputs to files;
  - batched: ``--config 'execution={mode: batched}'`` and ``--until`` every
    batch rule: per batch of about 100 images one job running
    ``steps.batch_image`` on each image (raw image read once; smooth ...
    rings in memory; writes labels, measurements, rings and - for the images
    in the QC sample, ``figures.qc_images`` = 200 by default, i.e. all of them
    here - the smooth/threshold/refine files), then ``steps.batch_tables``
    (the batch's Parquet shards).

* loop: ``multiprocessing.Pool(C)`` (forkserver, chunksize 1) in this process
  calling the same step functions with the same arguments, writing the same
  files to another folder: per_step, the 6 step functions in turn per image;
  batched, ``steps.batch_image`` per image, then ``steps.batch_tables`` per
  batch (the workflow's batches). No logs or benchmark records (the workflow
  writes one of each per job).

Both modes do the same per-image computation (label, measure, rings, every
intermediate written); batched also writes the batch shards. Each measurement
is repeated ``--repeat`` times (default 3), interleaved (workflow, loop, per
mode, per repeat) so load from other processes hits both; printed: every
value, the median and the minimum (the least disturbed run when other
processes load the machine), the ratios workflow / loop within each repeat,
their median and the ratio of the minima, and the 1-min load average before /
after each measurement ("quiet" only when it was < 0.5 before the first).
Targets: per_step ratio <= 1.3 (100 stills); batched ratio <= 1.2 (200 stills).

Usage: .venv/bin/python benchmarks/overhead.py [--images 100] [--mode both] [--repeat 3] [--cores 2]
       [--size 1024] [--batch-size 100] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
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
sys.path.insert(0, str(ROOT))
DATASET = "bench"


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


# ---- the loop's jobs (run in the pool's workers) ---------------------------


def per_step_image(job: dict) -> None:
    """The 6 per-step rules of one image, as the rules call them (inputs, outputs, params)."""
    from snakescope import steps

    ds, name, image, r = job["ds"], job["name"], job["image"], job["out"]
    seg, reading = ds["segment"], job["reading"]
    f = {k: f"{r}/{k}/{name}" for k in ("smooth", "threshold", "refine", "labels", "measurements", "rings")}
    steps.smooth(image=image, smoothed=f["smooth"] + ".tif", reading=reading, channel=seg["channel"],
                 diameter=seg["diameter"], smooth=seg["smooth"])
    steps.threshold(smoothed=f["smooth"] + ".tif", mask=f["threshold"] + ".tif", table=f["threshold"] + ".csv",
                    image=name, diameter=seg["diameter"], threshold=seg["threshold"])
    steps.refine(mask=f["threshold"] + ".tif", refined=f["refine"] + ".tif", diameter=seg["diameter"],
                 refine=seg["refine"])
    steps.label(mask=f["refine"] + ".tif", smoothed=f["smooth"] + ".tif", thresholds=f["threshold"] + ".csv",
                labels=f["labels"] + ".tif", frames=f["labels"] + ".csv", name=name, settings=job["settings"])
    steps.measure(image=image, labels=f["labels"] + ".tif", measurements=f["measurements"] + ".csv", name=name,
                  reading=reading, saturation=ds["saturation"], rods=False)
    steps.rings(image=image, labels=f["labels"] + ".tif", ring_labels=f["rings"] + ".tif",
                ring_table=f["rings"] + ".csv", name=name, reading=reading, channel=seg["channel"],
                diameter=seg["diameter"], rings=ds["rings"])


def batch_image(kwargs: dict) -> None:
    from snakescope import steps

    steps.batch_image(**kwargs)


def batch_tables(kwargs: dict) -> None:
    from snakescope import steps

    steps.batch_tables(**kwargs)


# ---- set-up ---------------------------------------------------------------


def reading_of(ds: dict) -> dict:
    """What the workflow's ``reading`` params function gives for a plain single-file image."""
    out = {k: ds[k] for k in ("axes", "channels", "pixel_size_um", "frame_interval_s")}
    if ds["z_projection"]:
        out["z_projection"] = ds["z_projection"]
    return out


def batched_plan(config: dict, names: list[str], data: Path, out: str) -> tuple[list, dict]:
    """The workflow's batches and, per image, the keyword arguments of
    ``steps.batch_image`` (as workflow/rules/common.smk batch_plan builds them)
    with outputs under ``out``."""
    from snakescope import params as sparams
    from snakescope.batching import stable_batches, stable_sample

    ds = config["datasets"][DATASET]
    qc_n = config["figures"]["qc_images"]
    with_qc = set(stable_sample(names, n=None if qc_n == "all" else qc_n))
    reading = reading_of(ds)
    plan = {}
    for name in names:
        r = f"{out}/results/{DATASET}"
        kw = {"image": str(data / f"{name}.tif"), "name": name, "reading": reading,
              "segment_settings": ds["segment"], "settings": sparams.label_settings(ds["segment"], reading),
              "rings": ds["rings"], "saturation": ds["saturation"], "rods": False, "track": None, "invert": False,
              "labels": f"{r}/labels/{name}.tif"}
        if name in with_qc:  # the ring labels and frames table for QC, and its threshold panels' files
            kw.update({"ring_labels": f"{r}/rings/{name}.tif", "frames": f"{r}/labels/{name}.csv",
                       "smoothed": f"{r}/smooth/{name}.tif", "mask": f"{r}/threshold/{name}.tif",
                       "threshold_table": f"{r}/threshold/{name}.csv", "refined": f"{r}/refine/{name}.tif"})
        plan[name] = kw
    batches = stable_batches(names, batch_size=config["execution"]["batch_size"])
    return batches, plan


def check_plan(work: Path, plan: dict, loop_out: str) -> str:
    """Compare the loop's batch_image arguments with the plans the workflow's
    batch jobs recorded (results/<dataset>/logs/batch/<id>.plan.json)."""
    recorded = {}
    for path in sorted((work / f"results/{DATASET}/logs/batch").glob("*.plan.json")):
        recorded.update(json.loads(path.read_text()))
    if not recorded:
        return "no plan record found (not checked)"
    mine = {n: {k: v for k, v in kw.items() if k != "tables"} for n, kw in plan.items()}  # added by the runner
    mine = json.loads(json.dumps(mine, default=str).replace(f"{loop_out}/", ""))
    recorded = {n: {k: v for k, v in kw.items() if k != "content"} for n, kw in recorded.items()}
    if mine == recorded:
        return "identical to the workflow's recorded batch plans"
    diff = sorted({k for n in mine for k in set(mine[n]) | set(recorded.get(n, {}))
                   if mine[n].get(k) != recorded.get(n, {}).get(k)})
    return f"DIFFERENT from the workflow's recorded plans in: {diff or 'image names'}"


def load1() -> float:
    return os.getloadavg()[0]


def clean(path: Path) -> None:
    for sub in ("results", ".snakemake"):
        shutil.rmtree(path / sub, ignore_errors=True)


def run_workflow(work: Path, cfg_path: Path, cores: int, mode: str, batch_size: int, until: list[str],
                 *extra: str) -> float:
    clean(work)
    work.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(work), "--cores", str(cores), *extra, "--until", *until, "--configfile",
           str(cfg_path), "--config", f"execution={{mode: {mode}, batch_size: {batch_size}}}", "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        print(proc.stdout[-2000:], proc.stderr[-3000:])
        raise SystemExit(f"workflow run failed: {' '.join(cmd)}")
    return wall


LOOP_DIRS = ("smooth", "threshold", "refine", "labels", "measurements", "rings", "batches")


def run_loop(out: Path, cores: int, stages: list[tuple]) -> float:
    """``stages``: (function, list of arguments) run one after the other, each over the pool."""
    clean(out)
    for sub in LOOP_DIRS:  # Snakemake makes the folders of a job's outputs before it runs
        (out / f"results/{DATASET}/{sub}").mkdir(parents=True)
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(cores) as pool:
        for function, jobs in stages:
            pool.map(function, jobs, chunksize=1)
    return time.perf_counter() - t0


def same_files(a: Path, b: Path, names: list[str], patterns: tuple[str, ...]) -> bool:
    return all((a / p.format(n)).read_bytes() == (b / p.format(n)).read_bytes() for n in names for p in patterns)


#: Files compared between the workflow and the loop, per mode (batched mode writes
#: the per-image measurement and ring tables only for validation; their rows are
#: in the shards).
COMPARED = {"per_step": ("labels/{}.tif", "labels/{}.csv", "measurements/{}.csv", "rings/{}.tif", "rings/{}.csv"),
            "batched": ("labels/{}.tif", "labels/{}.csv", "rings/{}.tif")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--mode", choices=("per_step", "batched", "both"), default="both")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=100, help="execution.batch_size (batched)")
    ap.add_argument("--workdir", type=Path, default=None, help="parent of the temporary folder (default: system temp)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    modes = ["per_step", "batched"] if args.mode == "both" else [args.mode]

    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="snakescope-overhead-", dir=args.workdir))
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip() or "unknown"
        start_load = os.getloadavg()
        print(f"workflow {ROOT} at {head}; {args.images} stills {args.size}x{args.size}; --cores {args.cores} "
              f"({os.cpu_count()} CPUs); modes {', '.join(modes)}; {args.repeat} repeats; temp {work}")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in start_load)} "
              f"({'quiet' if start_load[0] < 0.5 else 'NOT quiet: other processes are running'})", flush=True)

        data = work / "data"
        data.mkdir()
        t0 = time.perf_counter()
        names = [f"img_{i:04d}" for i in range(args.images)]
        for i, name in enumerate(names):
            tifffile.imwrite(data / f"{name}.tif", make_image(i, args.size))
        print(f"made {args.images} images in {time.perf_counter() - t0:.1f} s", flush=True)

        config = {"datasets": {DATASET: {"images": str(data / "{image}.tif"), "segment": {"diameter": 18},
                                         "track": {"enabled": False}}}}
        cfg_path = work / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(config))
        # The config with defaults, as the workflow sees it (for the loop).
        from snakemake.utils import validate

        full = json.loads(json.dumps(config))
        full["execution"] = {"mode": "batched", "batch_size": args.batch_size}
        validate(full, str(ROOT / "workflow/schemas/config.schema.yaml"), set_default=True)
        ds = full["datasets"][DATASET]

        setups = {}
        if "per_step" in modes:
            from snakescope import params as sparams

            reading = reading_of(ds)
            jobs = [{"ds": ds, "name": n, "image": str(data / f"{n}.tif"), "reading": reading,
                     "settings": sparams.label_settings(ds["segment"], reading),
                     "out": str(work / f"loop-per_step/results/{DATASET}")} for n in names]
            setups["per_step"] = (["measure", "rings"], [(per_step_image, jobs)],
                                  f"snakemake --until measure rings ({6 * args.images} jobs: smooth, threshold, "
                                  f"refine, label, measure, rings per image)",
                                  "Pool: the 6 step functions per image")
        if "batched" in modes:
            loop_out = str(work / "loop-batched")
            batches, plan = batched_plan(full, names, data, loop_out)
            rules = [f"batch_{DATASET}_{b.id}" for b in batches]
            for n in names:  # each image's tables for its batch's shards (the runner's temporary files)
                plan[n]["tables"] = f"{loop_out}/results/{DATASET}/batches/tables/{n}.pkl"
            tables = [{"tables": [plan[n]["tables"] for n in b.images],
                       "objects_shard": f"{loop_out}/results/{DATASET}/batches/{b.id}.objects.parquet",
                       "images_shard": f"{loop_out}/results/{DATASET}/batches/{b.id}.images.parquet",
                       "dataset": DATASET} for b in batches]
            sizes = sorted(len(b.images) for b in batches)
            setups["batched"] = (rules, [(batch_image, list(plan.values())), (batch_tables, tables)],
                                 f"snakemake --until <{len(rules)} batch rules> ({len(rules)} jobs, batches of "
                                 f"{', '.join(map(str, sizes))} images)",
                                 "Pool: batch_image per image, then batch_tables per batch")

        # Snakemake's fixed cost in the workflow's wall time: the same command with -n
        # (start-up, config, image discovery, DAG; no pool, no job).
        dry = {}
        for mode in modes:
            l0 = load1()
            dry[mode] = (run_workflow(work / mode, cfg_path, args.cores, mode, args.batch_size, setups[mode][0], "-n"),
                         f"{l0:.2f}/{load1():.2f}")
        runs: dict[tuple[str, str], list[float]] = {(m, k): [] for m in modes for k in ("workflow", "loop")}
        loads: dict[tuple[str, str], list[str]] = {k: [] for k in runs}
        checks = {}
        for rep in range(args.repeat):
            for mode in modes:
                until, stages, _, _ = setups[mode]
                l0 = load1()
                wf = run_workflow(work / mode, cfg_path, args.cores, mode, args.batch_size, until)
                l1 = load1()
                loop = run_loop(work / f"loop-{mode}", args.cores, stages)
                l2 = load1()
                runs[(mode, "workflow")].append(wf)
                runs[(mode, "loop")].append(loop)
                loads[(mode, "workflow")].append(f"{l0:.2f}/{l1:.2f}")
                loads[(mode, "loop")].append(f"{l1:.2f}/{l2:.2f}")
                print(f"repeat {rep + 1} {mode}: workflow {wf:.1f} s (load {l0:.2f} -> {l1:.2f}), "
                      f"loop {loop:.1f} s (load {l1:.2f} -> {l2:.2f}), ratio {wf / loop:.2f}", flush=True)
                if rep == 0:
                    a, b = work / mode / f"results/{DATASET}", work / f"loop-{mode}" / f"results/{DATASET}"
                    checks[mode] = same_files(a, b, names[:5], COMPARED[mode])
                    if mode == "batched":
                        checks["plan"] = check_plan(work / mode, plan, loop_out)
            if rep == 0 and len(modes) == 2:
                checks["modes"] = same_files(work / f"per_step/results/{DATASET}", work / f"batched/results/{DATASET}",
                                             names[:5], COMPARED["batched"])

        end_load = os.getloadavg()
        fmt = lambda xs: ", ".join(f"{x:.1f}" for x in xs)  # noqa: E731
        print("\n| mode | run | what it includes | wall s (each repeat) | median s | min s | load 1-min before/after |")
        print("|---|---|---|---|---|---|---|")
        for mode in modes:
            _, _, wf_what, loop_what = setups[mode]
            for kind, what in (("workflow", wf_what), ("loop", loop_what)):
                xs = runs[(mode, kind)]
                print(f"| {mode} | {kind} | {what} | {fmt(xs)} | {statistics.median(xs):.1f} | {min(xs):.1f} | "
                      f"{', '.join(loads[(mode, kind)])} |")
            print(f"| {mode} | workflow -n | the same snakemake command with -n, once: start-up, config, DAG "
                  f"(part of the workflow's time) | {dry[mode][0]:.1f} | | | {dry[mode][1]} |")
        print("\n| ratio (same run) | each repeat | median | of the minima | target |")
        print("|---|---|---|---|---|")
        targets = {"per_step": "<= 1.3 (100 stills)", "batched": "<= 1.2 (200 stills)"}
        for mode in modes:
            r = [w / lp for w, lp in zip(runs[(mode, "workflow")], runs[(mode, "loop")])]
            mins = min(runs[(mode, "workflow")]) / min(runs[(mode, "loop")])
            print(f"| {mode}: workflow / loop | {', '.join(f'{x:.2f}' for x in r)} | {statistics.median(r):.2f} | "
                  f"{mins:.2f} | {targets[mode]} |")
        if len(modes) == 2:
            for kind in ("workflow", "loop"):
                r = [b / p for b, p in zip(runs[("batched", kind)], runs[("per_step", kind)])]
                mins = min(runs[("batched", kind)]) / min(runs[("per_step", kind)])
                print(f"| {kind}: batched / per_step | {', '.join(f'{x:.2f}' for x in r)} | "
                      f"{statistics.median(r):.2f} | {mins:.2f} | |")
        print()
        for mode in modes:
            print(f"{mode}: workflow and loop files identical (labels, measurements, rings; first 5 images): "
                  f"{checks[mode]}")
        if "plan" in checks:
            print(f"batched: loop's batch_image arguments {checks['plan']}")
        if "modes" in checks:
            print(f"per_step and batched workflow files identical (first 5 images): {checks['modes']}")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in start_load)} "
              f"({'quiet' if start_load[0] < 0.5 else 'NOT quiet'}); "
              f"after: {' '.join(f'{x:.2f}' for x in end_load)}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
