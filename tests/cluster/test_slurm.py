"""The workflow through a real single-node SLURM cluster (profiles/slurm + profiles/slurm-test).

Runs only when asked: SNAKESCOPE_CLUSTER=1, or CI=true (SNAKESCOPE_CLUSTER=0 skips
even then); `make test-cluster` does it. Uses the cluster that
tests/cluster/with_slurm.py started (SNAKESCOPE_SLURM_DIR), or starts one for this
module (needs root; installs the Debian packages if missing). When SLURM cannot be
started the module is skipped with the reason, or fails with
SNAKESCOPE_REQUIRE_SLURM=1.

The local reference run and the two SLURM runs start together (the SLURM runs
mostly wait: for job starts and for status checks). SNAKESCOPE_CLUSTER_FULL=1 also
runs the example without grouping (one SLURM job per rule and image: minutes).
"""

from __future__ import annotations

import importlib.util
import os
import re
import select
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
PROFILES = ["--profile", str(ROOT / "profiles" / "slurm"), "--profile", str(ROOT / "profiles" / "slurm-test")]
#: Batched mode: profiles/slurm-batched between the user and the test profile; the
#: test node has 2 CPUs, so batch jobs get 2 workers (--config replaces the profile's).
#: local_batch_mb 0: every batch a SLURM job (the example's are small enough to run on
#: the submit host by default: SMALL_BATCHES).
BATCHED = ["--profile", str(ROOT / "profiles" / "slurm"), "--profile", str(ROOT / "profiles" / "slurm-batched"),
           "--profile", str(ROOT / "profiles" / "slurm-test"),
           "--config", "execution={mode: batched, threads: 2, mem_mb_per_worker: 1000, local_batch_mb: 0}"]
SMALL_BATCHES = BATCHED[:-1] + ["execution={mode: batched, threads: 2, mem_mb_per_worker: 1000}"]
STATE_DIR = Path(os.environ.get("SNAKESCOPE_SLURM_DIR", "/tmp/snakescope-slurm"))
REQUIRE = os.environ.get("SNAKESCOPE_REQUIRE_SLURM") == "1"
#: Bounds on one snakemake run through the test cluster: a hang fails the test, not CI's clock.
RUN_TIMEOUT = 1500
FAIL_TIMEOUT = 480

_asked = os.environ.get("SNAKESCOPE_CLUSTER")
if not (_asked == "1" or (_asked != "0" and os.environ.get("CI") == "true") or REQUIRE):
    pytest.skip("cluster tests start a SLURM cluster: run them with `make test-cluster` or "
                "SNAKESCOPE_CLUSTER=1 (CI=true runs them too)", allow_module_level=True)

pytestmark = [pytest.mark.cluster, pytest.mark.workflow]


def _unavailable(reason: str):
    if REQUIRE:
        pytest.fail(f"SLURM is required (SNAKESCOPE_REQUIRE_SLURM=1) but {reason}", pytrace=False)
    pytest.skip(f"SLURM cluster tests skipped: {reason}", allow_module_level=True)


if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
    _unavailable("snakemake-executor-plugin-slurm is not installed in this venv "
                 "(pip install snakemake-executor-plugin-slurm==2.8.0)")


# --- the cluster ---------------------------------------------------------------

def _cluster_env() -> dict:
    env = dict(os.environ, SLURM_CONF=str(STATE_DIR / "etc" / "slurm.conf"))
    env.pop("SNAKESCOPE_INLINE", None)
    return env


def _running_cluster() -> bool:
    """A cluster started by with_slurm.py/start_slurm.sh is up in STATE_DIR."""
    if not (STATE_DIR / "pids").exists() or shutil.which("sinfo") is None:
        return False
    res = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=30,
                         env=_cluster_env())
    return res.returncode == 0 and any(state in res.stdout for state in ("idle", "mix", "alloc"))


@pytest.fixture(scope="module")
def cluster():
    """Environment of a running test cluster (started here if none is running)."""
    if _running_cluster():
        yield _cluster_env()
        return
    if os.geteuid() != 0:
        _unavailable("no test cluster is running and starting one needs root (run `make test-cluster` as root)")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        _unavailable("SLURM is not installed and there is no apt-get to install it")
    holder = subprocess.Popen([sys.executable, str(HERE / "with_slurm.py"), "--install", "--hold",
                               "--dir", str(STATE_DIR)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300  # includes apt-get install
    line = ""
    while time.monotonic() < deadline and holder.poll() is None:
        if select.select([holder.stdout], [], [], 1.0)[0]:
            line = holder.stdout.readline()
            break
    if not line.startswith("ready"):
        try:
            err = holder.communicate(timeout=120)[1]  # closes its stdin: it stops what it started
        except subprocess.TimeoutExpired:
            holder.terminate()
            err = holder.communicate()[1]
        lines = err.splitlines()
        _unavailable("the test cluster did not start: "
                     + "\n".join([ln for ln in lines if "FAILED" in ln or ln.startswith("with_slurm:")] or lines[-10:]))
    try:
        yield _cluster_env()
    finally:
        _, err = holder.communicate(timeout=120)  # closes its stdin: with_slurm.py stops the cluster
        assert holder.returncode == 0, f"the test cluster did not stop cleanly:\n{err[-3000:]}"


# --- helpers ---------------------------------------------------------------------

def snakemake(workdir: Path, *args: str, env: dict | None = None, timeout: float = RUN_TIMEOUT):
    """Snakemake on the repository's Snakefile in ``workdir``, which is also the current
    directory (SLURM jobs start in the directory snakemake was started from)."""
    if env is None:
        env = dict(os.environ)
        env.pop("SNAKESCOPE_INLINE", None)
    start = time.monotonic()
    res = subprocess.run([SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
                          "--configfile", str(workdir / "config.yaml"), *args],
                         cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    res.seconds = time.monotonic() - start
    return res


def example_workdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config" / "config.yaml", path / "config.yaml")
    return path


def corrupt_tiff(path: Path) -> None:
    """A TIFF whose header and metadata are fine (the workflow may read them when it
    starts) but whose compressed pixel data are garbage bytes: the first step fails."""
    rng = np.random.default_rng(0)
    tifffile.imwrite(path, rng.integers(0, 1000, (2, 64, 64), dtype=np.uint16),
                     metadata={"axes": "CYX"}, compression="zlib")
    with tifffile.TiffFile(path) as tif:
        strips = [(o, n) for page in tif.pages for o, n in zip(page.dataoffsets, page.databytecounts)]
    with open(path, "r+b") as fh:
        for offset, size in strips:
            fh.seek(offset)
            fh.write(rng.bytes(size))


def corrupt_workdir(path: Path) -> Path:
    (path / "data").mkdir(parents=True, exist_ok=True)
    corrupt_tiff(path / "data" / "broken.tif")
    (path / "config.yaml").write_text(yaml.safe_dump({"datasets": {"corrupt": {
        "images": [str(path / "data" / "broken.tif")],
        "channels": ["nucleus", "reporter"],
        "pixel_size_um": 0.65,
        "segment": {"channel": "nucleus", "diameter": 8},
    }}}))
    return path


SKIP_PARTS = {"logs", "benchmarks", ".snakemake"}


def outputs(workdir: Path, skip: set[str] = frozenset()) -> dict[str, Path]:
    """Files the workflow made (results/, resources/), without logs and benchmarks."""
    found = {}
    for top in ("results", "resources"):
        for p in sorted((workdir / top).rglob("*")):
            rel = p.relative_to(workdir)
            if p.is_file() and not (SKIP_PARTS | skip) & set(rel.parts):
                found[str(rel)] = p
    return found


#: Per-image tables batched mode writes only where a later step reads them (their
#: rows are in the dataset tables): rules measure's and rings' CSV files, and rule
#: label's frames table (read by the QC threshold panels of the threshold method).
BATCHED_NOT_WRITTEN = re.compile(r"^results/[^/]+/(measurements/[^/]+|rings/[^/]+\.csv|labels/[^/]+\.csv)$")


def assert_same_outputs(local: Path, other: Path, skip: set[str] = frozenset(), batched: bool = False):
    a, b = outputs(local, skip), outputs(other, skip)
    if batched:  # every file batched mode writes is one the local run writes
        missing = set(a) - set(b)
        assert all(BATCHED_NOT_WRITTEN.match(k) for k in missing), sorted(missing)
        a = {k: v for k, v in a.items() if k not in missing}
    assert sorted(a) == sorted(b), (f"different files: only local {sorted(set(a) - set(b))}, "
                                    f"only SLURM {sorted(set(b) - set(a))}")
    tables_and_images = [k for k in a if k.endswith((".tif", ".tiff", ".csv"))]
    assert len(tables_and_images) > 20
    differ = [k for k in tables_and_images if a[k].read_bytes() != b[k].read_bytes()]
    assert not differ, f"TIFF/CSV files differ between the local and the SLURM run: {differ}"


def submissions(result) -> list[int]:
    """SLURM job ids submitted by a run, from its log."""
    return [int(i) for i in re.findall(r"has been submitted with SLURM jobid (\d+)", result.stdout + result.stderr)]


def squeue_jobs(result, env) -> list[int]:
    """The run's SLURM jobs as squeue sees them: jobs are named by the run's uuid, and
    without accounting squeue shows finished jobs for MinJobAge (3600 s in start_slurm.sh)."""
    m = re.search(r"SLURM run ID: (\S+)", result.stdout + result.stderr)
    assert m, "no SLURM run ID in the log"
    res = subprocess.run(["squeue", "-h", "-t", "all", "--name", m.group(1), "-o", "%i"],
                         capture_output=True, text=True, env=env, timeout=30)
    assert res.returncode == 0, res.stderr
    return sorted(int(x) for x in res.stdout.split())


def planned_jobs(result) -> dict[str, int]:
    """The 'Job stats' table of a (dry) run: rule -> count."""
    lines = (result.stdout + result.stderr).splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("job") and "count" in line:
            jobs = {}
            for row in lines[i + 2:]:
                parts = row.split()
                if len(parts) != 2 or not parts[1].isdigit():
                    break
                jobs[parts[0]] = int(parts[1])
            jobs.pop("total", None)
            return jobs
    return {}


def ungrouped_profile(directory: Path) -> list[str]:
    """profiles/slurm without groups (each rule and image its own SLURM job)."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    profile.pop("groups")
    profile.pop("group-components")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile))
    return ["--profile", str(directory), "--profile", str(ROOT / "profiles" / "slurm-test")]


# --- the runs (started together) ------------------------------------------------

@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """name -> (workdir, future of the finished run)."""
    local = example_workdir(tmp_path_factory.mktemp("local"))
    slurm = example_workdir(tmp_path_factory.mktemp("slurm"))
    corrupt = corrupt_workdir(tmp_path_factory.mktemp("corrupt"))
    batched = example_workdir(tmp_path_factory.mktemp("batched"))
    small = example_workdir(tmp_path_factory.mktemp("small"))
    with ThreadPoolExecutor(5) as pool:
        yield {
            "slurm": (slurm, pool.submit(snakemake, slurm, *PROFILES, env=cluster)),
            "batched": (batched, pool.submit(snakemake, batched, *BATCHED, env=cluster)),
            "corrupt": (corrupt, pool.submit(snakemake, corrupt, *PROFILES, env=cluster, timeout=FAIL_TIMEOUT)),
            "local": (local, pool.submit(snakemake, local, "--cores", "2")),
            "small": (small, pool.submit(snakemake, small, *SMALL_BATCHES, env=cluster)),
        }


@pytest.fixture(scope="module")
def local_run(runs):
    work, future = runs["local"]
    res = future.result()
    assert res.returncode == 0, res.stderr[-3000:]
    return work, res


@pytest.fixture(scope="module")
def slurm_run(runs):
    work, future = runs["slurm"]
    res = future.result()
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    return work, res


# --- tests -----------------------------------------------------------------------

def test_example_through_slurm_is_byte_identical_to_local(local_run, slurm_run):
    assert_same_outputs(local_run[0], slurm_run[0])
    print(f"\nexample: local run {local_run[1].seconds:.1f} s, SLURM run {slurm_run[1].seconds:.1f} s")


def test_batched_mode_through_slurm_is_byte_identical_to_local(local_run, runs):
    """profiles/slurm-batched: one SLURM job per batch of images (here one per dataset),
    the same TIFF and CSV files as the local per-step run, and Parquet files with the
    same tables (their row groups differ: one per batch)."""
    import pandas as pd

    work, future = runs["batched"]
    res = future.result()
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    assert_same_outputs(local_run[0], work, skip={"batches"}, batched=True)
    for name in ("objects", "images"):
        for path in (local_run[0] / "results").glob(f"*/tables/{name}.parquet"):
            other = work / path.relative_to(local_run[0])
            pd.testing.assert_frame_equal(pd.read_parquet(other), pd.read_parquet(path), check_exact=True)
    batch_jobs = [m for m in re.findall(r"rule (batch_\w+):", res.stdout + res.stderr)]
    assert len(set(batch_jobs)) == 3, batch_jobs  # the example's three datasets, one batch each
    logs = list((work / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert any("batch_" in str(p) for p in logs)
    print(f"\nexample batched: local per-step run {local_run[1].seconds:.1f} s, SLURM batched run "
          f"{res.seconds:.1f} s ({len(submissions(res))} SLURM jobs)")


def test_small_batches_run_on_the_submit_host(local_run, runs):
    """execution.local_batch_mb (default 16): the example's batches (0.5-4 MB of images) are
    local rules of the Snakemake that was started, not SLURM jobs; same files."""
    work, future = runs["small"]
    res = future.result()
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    assert_same_outputs(local_run[0], work, skip={"batches"}, batched=True)
    log = res.stdout + res.stderr
    assert len(set(re.findall(r"localrule (batch_\w+):", log))) == 3, log[-3000:]
    assert submissions(res) == []  # nothing else of the example goes to SLURM either
    print(f"\nexample batched, small batches on the submit host: {res.seconds:.1f} s")


def test_grouping_batches_the_per_image_steps(slurm_run, cluster, tmp_path):
    work, res = slurm_run
    submitted = submissions(res)
    # squeue and the log agree, and every submission left a SLURM log
    assert squeue_jobs(res, cluster) == sorted(submitted)
    logs = list((work / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert len(logs) == len(submitted)
    assert any(p.parent.name.startswith("group_per_image") for p in logs), logs
    # Without grouping: one SLURM job per job of a dry run (rules without a run:
    # block, such as all, run in the main process).
    dry = snakemake(example_workdir(tmp_path / "dry"), "-n", *ungrouped_profile(tmp_path / "profile"),
                    env=cluster, timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = planned_jobs(dry)
    ungrouped = sum(jobs.values()) - jobs.get("all", 0) - jobs.get("figures", 0)
    print(f"\nSLURM jobs for the example: {len(submitted)} grouped, {ungrouped} without grouping "
          f"(jobs per rule: {jobs})")
    assert 0 < len(submitted) <= ungrouped / 4


def test_corrupt_image_fails_fast_naming_rule_and_log(runs):
    """A corrupt .tif through SLURM: non-zero exit, the failed rule and its log named, no hang."""
    work, future = runs["corrupt"]
    res = future.result()  # subprocess.TimeoutExpired (FAIL_TIMEOUT) if it hangs
    out = res.stdout + res.stderr
    print(f"\ncorrupt image: exit {res.returncode} after {res.seconds:.1f} s, {len(submissions(res))} SLURM jobs")
    assert res.returncode != 0
    assert "Error in rule smooth" in out, out[-4000:]
    log = "results/corrupt/logs/smooth/broken.log"
    assert log in out, out[-4000:]
    assert "truncated or corrupt" in (work / log).read_text()
    assert "truncated or corrupt" in out  # the one-line reason reaches the console
    assert not (work / "results/corrupt/smooth/broken.tif").exists()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SNAKESCOPE_CLUSTER_FULL") != "1",
                    reason="the ungrouped SLURM run takes minutes: set SNAKESCOPE_CLUSTER_FULL=1")
def test_ungrouped_run_is_identical_too(local_run, cluster, tmp_path):
    work = example_workdir(tmp_path / "work")
    res = snakemake(work, *ungrouped_profile(tmp_path / "profile"), env=cluster, timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    assert_same_outputs(local_run[0], work)
    print(f"\nungrouped example: {len(submissions(res))} SLURM jobs, {res.seconds:.1f} s")
