"""Interruption recovery, concurrent invocations, worker crashes and Ctrl-C."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from workflow_utils import ROOT, SNAKEMAKE, files_under, run_snakemake, write_dataset

pytestmark = pytest.mark.workflow


def _dataset(tmp: Path) -> dict:
    config = write_dataset(tmp, n_images=4, n_frames=3)
    return config


def _start(workdir: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), "--cores", "2",
           "--configfile", str(workdir / "config.yaml"), *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, **(env or {})})


def _live_processes(pgid: int) -> list[str]:
    """Processes (not zombies) of a process group, from /proc."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            alive.append(text[:80])
    return alive


def _final_outputs(results: Path) -> dict[str, bytes]:
    return {k: v for k, v in files_under(results).items()
            if not k.startswith(("logs", "benchmarks")) and "/logs/" not in k and "/benchmarks/" not in k}


def test_sigkill_at_random_points_then_resume_is_byte_identical(tmp_path):
    import shutil

    import yaml

    work = tmp_path
    config = _dataset(work)
    t0 = time.perf_counter()
    assert run_snakemake(work, config).returncode == 0
    duration = time.perf_counter() - t0
    reference = _final_outputs(work / "results")
    shutil.rmtree(work / "results")
    shutil.rmtree(work / ".snakemake")

    (work / "config.yaml").write_text(yaml.safe_dump(config))
    rng = random.Random(20261121)
    kills = 0
    for _ in range(15):
        if kills >= 6:
            break
        proc = _start(work)
        time.sleep(rng.uniform(0.3, max(0.6, duration * 0.5)))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        deadline = time.time() + 10
        while _live_processes(proc.pid) and time.time() < deadline:
            time.sleep(0.1)
        assert not _live_processes(proc.pid), "processes survived SIGKILL of the group"
        subprocess.run([SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
                        "--configfile", str(work / "config.yaml"), "--unlock"], cwd=ROOT, capture_output=True)
    assert kills >= 5
    final = run_snakemake(work, None, "--configfile", str(work / "config.yaml"))
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    got = _final_outputs(work / "results")
    assert sorted(got) == sorted(reference)
    assert [k for k in reference if got[k] != reference[k]] == []
    assert not list((work / "results").rglob(".tmp-*"))


def test_second_invocation_is_refused_while_first_runs(tmp_path):
    config = _dataset(tmp_path)
    (tmp_path / "config.yaml").write_text(__import__("yaml").safe_dump(config))
    first = _start(tmp_path)
    time.sleep(1.5)
    second = run_snakemake(tmp_path, None, "--configfile", str(tmp_path / "config.yaml"))
    out = second.stdout + second.stderr
    first_out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, first_out[-3000:]
    assert second.returncode != 0
    assert "cannot be locked" in out or "LockException" in out
    labels = tifffile.imread(tmp_path / "results/tiny/labels/img3.tif")
    assert labels.shape == (3, 64, 64) and labels.max() == 4


def test_crashing_worker_fails_only_its_job_and_pool_recovers(tmp_path):
    config = write_dataset(tmp_path, n_images=3, n_frames=1)
    result = run_snakemake(tmp_path, config, "--keep-going", env={"SNAKESCOPE_TEST_CRASH": "label:img1"})
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "worker process died twice" in out and "img1" in out
    assert (tmp_path / "results/tiny/labels/img0.tif").exists()
    assert (tmp_path / "results/tiny/labels/img2.tif").exists()
    assert (tmp_path / "results/tiny/measurements/img2.csv").exists()  # later jobs still ran
    assert not (tmp_path / "results/tiny/labels/img1.tif").exists()
    again = run_snakemake(tmp_path, config)
    assert again.returncode == 0, again.stderr[-2000:]


def test_ctrl_c_stops_everything_without_orphans(tmp_path):
    config = _dataset(tmp_path)
    (tmp_path / "config.yaml").write_text(__import__("yaml").safe_dump(config))
    proc = _start(tmp_path)
    time.sleep(2.0)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
    proc.communicate(timeout=120)
    deadline = time.time() + 15
    while _live_processes(proc.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _live_processes(proc.pid)
    assert not list((tmp_path / "results").rglob(".tmp-*"))
