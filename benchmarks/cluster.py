"""Orchestration overhead of batched mode on a real (local, one-node) SLURM cluster.

Runs the workflow in batched mode through ``profiles/slurm`` +
``profiles/slurm-batched`` + ``profiles/slurm-test`` on N synthetic 512x512 stills
(default 2,000) up to the dataset tables, and the embedded example through SLURM
(batched) and locally (per_step, the default). Prints:

* compute: the summed wall time of the steps inside the workers (the per-image
  benchmark records of every batch, ``results/<d>/benchmarks/batch/*.tsv``, plus
  the records of the other steps);
* capacity: the SLURM run's wall time x the CPUs the machine has;
* overhead = (capacity - compute) / compute: every second a CPU was not running a
  step (queue waits, Snakemake start-up in each job, status polling, planning).
  Issue target: <= 10 % for 2,000 stills;
* where the rest goes, from the time stamps of Snakemake's logs (1 s
  resolution): start-up and planning until the first submission, per SLURM
  job the start of its two Snakemake processes until the batch starts and the
  delay until the submitting Snakemake notices its end, the tail (dataset
  tables, exit), and the CPU-s the batches had while they ran (at most the
  machine's CPUs) against the CPU-s their steps used;
* the example: SLURM batched wall / local wall (target <= 1.5), with the default
  ``execution.local_batch_mb`` (the example's small batches run on the submit host)
  and with every batch a SLURM job (``local_batch_mb: 0``).

Needs a running test cluster (SLURM_CONF set); run it as

    python3 tests/cluster/with_slurm.py --install -- .venv/bin/python benchmarks/cluster.py

Usage: benchmarks/cluster.py [--images 2000] [--batch-size 250] [--threads 2] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
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
sys.path.insert(0, str(ROOT / "benchmarks"))
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
PROFILES = ["--profile", str(ROOT / "profiles" / "slurm"), "--profile", str(ROOT / "profiles" / "slurm-batched"),
            "--profile", str(ROOT / "profiles" / "slurm-test")]


def make_stills(folder: Path, n: int, size: int = 512, distinct: int = 20) -> None:
    """``n`` stills: ``distinct`` different synthetic fields, repeated (same work per image)."""
    from overhead import make_image

    folder.mkdir(parents=True, exist_ok=True)
    fields = []
    for seed in range(distinct):
        path = folder / f"f{seed:05d}.tif"
        tifffile.imwrite(path, make_image(seed, size))
        fields.append(path.read_bytes())
    for i in range(distinct, n):
        (folder / f"f{i:05d}.tif").write_bytes(fields[i % distinct])


def run(workdir: Path, *args: str, env: dict) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    res = subprocess.run([SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), *args],
                         cwd=workdir, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, res


def compute_seconds(workdir: Path, column: str = "s") -> float:
    """Summed seconds of the steps inside the workers (benchmark records): wall
    (``s``) or CPU (``cpu_time``; the honest one when SLURM runs more workers
    than the machine has cores, which stretches every step's wall time)."""
    total = 0.0
    for path in (workdir / "results").rglob("benchmarks/**/*.tsv"):
        total += float(pd.read_csv(path, sep="\t")[column].iloc[0])
    return total


def _stamp(line: str) -> float | None:
    """Epoch seconds of a Snakemake log time stamp: ``[Tue Dec  1 04:42:44 2026]`` or ``  Date: 2026-12-01 04:42:45``."""
    line = line.strip()
    try:
        if line.startswith("[") and line.endswith("]"):
            return time.mktime(time.strptime(" ".join(line[1:-1].split()), "%a %b %d %H:%M:%S %Y"))
        if line.startswith("Date: "):
            return time.mktime(time.strptime(line[6:25], "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        return None
    return None


def _events(path: Path) -> list[tuple[float, str]]:
    """(time, line) for the header dates and for every line after a ``[...]`` time stamp."""
    out, now = [], None
    for line in path.read_text(errors="replace").splitlines():
        t = _stamp(line)
        if t is not None:
            now = t
            if line.strip().startswith("Date: "):
                out.append((t, "Date"))
        elif now is not None and line.strip():
            out.append((now, line.strip()))
    return out


def timeline(workdir: Path, *, started: float, ended: float, cpus: int, threads: int) -> dict[str, float]:
    """Where a batched SLURM run's wall time went, from the logs of its Snakemake processes.

    Returns the seconds from the start to the first submission, the medians
    over SLURM jobs of (batch start - job start) and (noticed by the
    submitting Snakemake - batch end), the tail after the last batch was
    noticed, and the CPU-s available to the batches while they ran.
    """
    main_log = max((workdir / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    main = _events(main_log)
    submitted = [t for t, line in main if line.startswith("rule batch_")]
    noticed = {line.split("Rule: ")[1].rstrip(")"): t for t, line in main
               if line.startswith("Finished jobid") and "Rule: batch_" in line}
    spans, starts, delays = [], [], []
    for log in (workdir / ".snakemake" / "slurm_logs").glob("rule_batch_*/*.log"):
        rule = log.parent.name[len("rule_"):]
        events = _events(log)
        dates = [t for t, line in events if line == "Date"]
        begin = [t for t, line in events if line.startswith(f"localrule {rule}")]
        end = [t for t, line in events if line.startswith("Finished jobid: 0")]
        if not (dates and begin and end):
            continue
        spans.append((begin[0], end[0]))
        starts.append(begin[0] - dates[0])
        if rule in noticed:
            delays.append(noticed[rule] - end[0])
    grid = np.arange(int(started), int(ended) + 1)
    running = sum(((grid >= a) & (grid < b)).astype(int) for a, b in spans) if spans else np.zeros(grid.size)
    return {
        "jobs": len(spans),
        "to_first_submission": (min(submitted) - started) if submitted else float("nan"),
        "job_start_to_batch": float(np.median(starts)) if starts else float("nan"),
        "batch_end_to_noticed": float(np.median(delays)) if delays else float("nan"),
        "tail": ended - max(noticed.values()) if noticed else float("nan"),
        "batch_cpu_s": float(np.minimum(running * threads, cpus).sum()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2, help="workers (CPUs) per batch job")
    ap.add_argument("--workdir", help="keep the runs here (default: a temporary folder, removed)")
    ap.add_argument("--skip-example", action="store_true")
    args = ap.parse_args()
    if not os.environ.get("SLURM_CONF"):
        print("cluster.py: no SLURM_CONF: start it through tests/cluster/with_slurm.py (see the docstring)")
        return 2
    env = dict(os.environ)
    env.pop("SNAKESCOPE_INLINE", None)
    base = Path(args.workdir or tempfile.mkdtemp(prefix="snakescope-cluster-"))
    cpus = os.cpu_count() or 1
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {cpus} CPUs")
    try:
        screen = base / "screen"
        shutil.rmtree(screen, ignore_errors=True)
        make_stills(screen / "data", args.images)
        (screen / "config.yaml").write_text(yaml.safe_dump({"datasets": {"screen": {
            "images": str(screen / "data" / "{image}.tif"), "channels": ["nucleus"],
            "segment": {"channel": "nucleus", "diameter": 19}, "track": {"enabled": False}}}}))
        execution = (f"execution={{mode: batched, batch_size: {args.batch_size}, threads: {args.threads}, "
                     f"mem_mb_per_worker: 800}}")
        target = "results/screen/tables/objects.csv"
        started = time.time()
        wall, res = run(screen, target, *PROFILES, "--configfile", str(screen / "config.yaml"),
                        "--config", execution, env=env)
        if res.returncode != 0:
            print(res.stdout[-3000:], res.stderr[-3000:])
            return 1
        compute = compute_seconds(screen)
        cpu = compute_seconds(screen, "cpu_time")
        jobs = (res.stdout + res.stderr).count("has been submitted with SLURM jobid")
        overhead = (wall * cpus - compute) / compute
        print(f"\n{args.images} stills 512x512, batched (batch_size {args.batch_size}, {args.threads} workers per "
              f"job) through SLURM: {jobs} SLURM jobs")
        print(f"  wall {wall:.1f} s; compute (steps in workers) {compute:.1f} s wall, {cpu:.1f} s CPU; "
              f"capacity {wall * cpus:.1f} CPU-s ({cpus} CPUs)")
        print(f"  orchestration overhead (capacity - compute) / compute = {overhead:.1%} with the steps' wall "
              f"time, {(wall * cpus - cpu) / cpu:.1%} with their CPU time   (target <= 10 %)")
        tl = timeline(screen, started=started, ended=started + wall, cpus=cpus, threads=args.threads)
        print(f"  where the rest went (log time stamps, 1 s resolution): start-up and planning until the first "
              f"submission {tl['to_first_submission']:.0f} s; per SLURM job (median of {tl['jobs']}) "
              f"{tl['job_start_to_batch']:.0f} s from its start to its batch's start (the job step's Snakemake, "
              f"srun, the batch's Snakemake) and {tl['batch_end_to_noticed']:.0f} s from the batch's end until "
              f"the submitting Snakemake noticed; tail after the last batch (tables, exit) {tl['tail']:.0f} s")
        print(f"  while batches ran they had {tl['batch_cpu_s']:.0f} CPU-s (at most {cpus} CPUs) for {cpu:.1f} "
              f"CPU-s of steps (the rest: reading, writing, the workers' start and the batch's last images on "
              f"fewer workers); outside batches {wall * cpus - tl['batch_cpu_s']:.0f} CPU-s")
        if not args.skip_example:
            local, slurm, jobs_only = base / "example_local", base / "example_slurm", base / "example_slurm_jobs"
            for d in (local, slurm, jobs_only):
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir(parents=True)
                shutil.copy(ROOT / "config" / "config.yaml", d / "config.yaml")
            local_wall, res_local = run(local, "--cores", str(cpus), "--configfile", str(local / "config.yaml"),
                                        env=env)
            # default: batches under execution.local_batch_mb (all of the example's) run on the submit host
            slurm_wall, res_slurm = run(slurm, *PROFILES, "--configfile", str(slurm / "config.yaml"), "--config",
                                        f"execution={{mode: batched, threads: {args.threads}}}", env=env)
            jobs_wall, res_jobs = run(jobs_only, *PROFILES, "--configfile", str(jobs_only / "config.yaml"),
                                      "--config", f"execution={{mode: batched, threads: {args.threads}, "
                                      "local_batch_mb: 0}", env=env)
            results = (res_local, res_slurm, res_jobs)
            ok = all(r.returncode == 0 for r in results)
            n_jobs = [(r.stdout + r.stderr).count("has been submitted with SLURM jobid") for r in results[1:]]
            print(f"\nembedded example: local per_step {local_wall:.1f} s; through SLURM, batched: "
                  f"{slurm_wall:.1f} s with the default local_batch_mb ({n_jobs[0]} SLURM jobs), ratio "
                  f"{slurm_wall / local_wall:.2f}   (target <= 1.5); every batch a SLURM job (local_batch_mb 0, "
                  f"{n_jobs[1]} jobs) {jobs_wall:.1f} s, ratio {jobs_wall / local_wall:.2f}"
                  f"{'' if ok else '  (A RUN FAILED)'}")
            if not ok:
                print(*(r.stderr[-2000:] for r in results))
                return 1
    finally:
        print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
