"""Warm worker processes that run workflow steps.

Snakemake runs each job's one-line ``run:`` block in a thread of its main
process (``--force-use-threads``); the block hands the step to a pool of worker
processes that imported numpy/scipy/scikit-image once. This keeps one file per
step and Snakemake's DAG, without paying an interpreter start and the imports
for every job, and without holding the GIL across parallel jobs.

Errors: a step that raises :class:`~snakescope.errors.InputError` (or anything
else) writes the full traceback to the rule's log file; the caller gets a
:class:`StepError` whose message is one line naming the file or config key.
A worker that dies (segfault, OOM kill) fails only its job; the pool is
rebuilt for the next one.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import sys
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Mapping, Sequence

_lock = threading.Lock()
_gc_deferred = False
_pool: ProcessPoolExecutor | None = None
_pool_size = 0

#: Modules imported once by the fork server, inherited by every worker
#: (``snakescope.plots``: matplotlib, which the workflow's own process does not
#: import). ``snakescope.runner`` first: see :func:`_adopt_main_path`.
PRELOAD = ["snakescope.runner", "snakescope.steps", "snakescope.plots", "scipy.ndimage", "scipy.optimize",
           "skimage.segmentation", "skimage.filters", "skimage.feature", "skimage.measure", "pandas", "tifffile"]


def _adopt_main_path() -> None:
    """In the fork server: take the main script's path as ``__main__.__file__``.

    A new worker re-runs the parent's main script (Snakemake's entry point, which
    imports Snakemake's CLI: ~0.5 s of CPU) as ``__mp_main__`` unless its own
    ``__main__`` already has that path; Python 3.11's fork server is meant to
    import it once for all workers but is never given the path. The workers
    need nothing from ``__main__`` (steps are pickled by reference to this
    library), so the fork server only takes the path (``SNAKESCOPE_MAIN_PATH``,
    set by :func:`_context`), and every worker skips the re-run.
    """
    path = os.environ.get("SNAKESCOPE_MAIN_PATH")
    main = sys.modules.get("__main__")
    if path and main is not None and not getattr(main, "__file__", None) \
            and "multiprocessing.forkserver" in sys.modules and sys.argv[:1] == ["-c"]:
        main.__file__ = path


_adopt_main_path()


class StepError(RuntimeError):
    """A workflow step failed; the message is one line, the log has the traceback."""


def _worker_init() -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    # as in the workflow's own process (common.smk): on a full disk every log
    # write fails, and logging would print a traceback for each; the step
    # itself still fails with "no space left on device" naming the file
    logging.raiseExceptions = False


def _context():
    """The forkserver context with the library preloaded (and one BLAS thread per worker)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    main_path = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_path:
        os.environ["SNAKESCOPE_MAIN_PATH"] = os.path.normpath(os.path.abspath(main_path))
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


#: Command-line flags with which this process runs no step.
_NO_STEPS = {
    "--dry-run",
    "--dryrun",
    "--lint",
    "--dag",
    "--rulegraph",
    "--filegraph",
    "--d3dag",
    "--summary",
    "--detailed-summary",
    "--list-rules",
    "--list-target-rules",
    "--list-changes",
    "--lc",
    "--report",
    "--unlock",
    "--touch",
    "--cleanup-metadata",
    "--delete-all-output",
    "--delete-temp-output",
    "--containerize",
    "--archive",
}


def runs_steps_here(argv: Sequence[str]) -> bool:
    """Whether this Snakemake process will run steps in its warm pool: not for a
    dry run, lint, graphs, summaries or a report, nor with ``--executor slurm``
    (the jobs run them; local rules start the pool when they come) or
    ``slurm-jobstep`` (inside a SLURM job: the Snakemake it starts with srun runs
    them). A guess from the command line (a profile's executor is not on it): a
    wrong guess only starts an idle fork server or starts it later."""
    for i, arg in enumerate(argv):
        if arg in _NO_STEPS or arg.split("=")[0] in _NO_STEPS:
            return False
        if arg[:1] == "-" and arg[1:2] != "-" and arg[1:].isalpha() and "n" in arg:
            return False  # -n, -np, -Fn: dry run
        if arg in ("-e", "--executor") and list(argv[i + 1:i + 2]) in (["slurm"], ["slurm-jobstep"]):
            return False  # the jobs, or the srun'd Snakemake inside this job, run them
    return os.environ.get("SNAKESCOPE_INLINE") != "1"


def allowed_rules(argv: Sequence[str]) -> set[str] | None:
    """The rules given to Snakemake's ``--allowed-rules`` (None without it).

    Snakemake passes it to the Snakemake of every cluster job (the job's own
    rule, or the rules of a group job); the workflow then defines only those of
    its per-batch rules: at 100,000 images, defining all ~1,000 batch rules
    took a job's Snakemake ~12 s before its batch started, twice per SLURM job.
    """
    names: set[str] | None = None
    for i, arg in enumerate(argv):
        if arg.startswith("--allowed-rules="):
            names = (names or set()) | set(arg.split("=", 1)[1].split())
        elif arg == "--allowed-rules":
            names = names or set()
            for value in argv[i + 1:]:
                if value.startswith("-"):
                    break
                names.add(value)
    return names


def exit_without_finalization() -> None:
    """End this process right after its ``sys.exit(status)``, skipping the
    interpreter's finalization.

    Tearing down the modules of a Snakemake process with numpy, pandas, scipy
    and scikit-image loaded takes ~0.4 s of every run (measured: 1.56 s vs
    1.17 s for an interpreter that only imports them). Installed at start-up, an
    ``atexit`` handler registered before any other runs last: after everything
    the program does on the way out (Snakemake's clean-up, its lock removal and
    log files, the other exit handlers), it flushes the standard streams and
    the logging handlers and ends the process with the status given to
    ``sys.exit``. Where the program ends otherwise (an exception, ``raise
    SystemExit``), nothing changes.
    """
    import atexit

    status: list[Any] = []
    real_exit = sys.exit

    def recording_exit(code: Any = 0) -> None:
        status[:] = [code]
        real_exit(code)

    def end() -> None:
        if not status or not (status[0] is None or isinstance(status[0], int)):
            return
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        os._exit(status[0] or 0)

    atexit.register(end)
    sys.exit = recording_exit


def cap_slurm_polling(modules: Mapping[str, Any] | None = None) -> bool:
    """Make the SLURM executor plugin poll at least every
    ``--seconds-between-status-checks`` seconds (Snakemake's flag, default 10).

    snakemake-executor-plugin-slurm (2.x) adds 10 s to its polling interval
    after every status check that finds no finished job, up to 180 s, and
    ignores the flag after the first check (plugin issue #319): a job that
    ends is noticed up to minutes later, and its dependants start that much
    later. Measured on the test cluster (``--seconds-between-status-checks
    1``): a 17 s batch job was noticed 8-28 s after it ended. This wraps the
    plugin's ``Executor.check_active_jobs`` so that after each check the next
    interval is at most the flag's value; the back-off below it is kept.
    Applied only when the plugin is loaded (Snakemake's command line imports
    every installed executor plugin) and its ``check_active_jobs`` is the
    async generator this was written against; otherwise nothing changes.

    Parameters
    ----------
    modules : mapping, optional
        Where to look for the loaded plugin module (default ``sys.modules``).

    Returns
    -------
    bool
        Whether the cap is in place.
    """
    import inspect

    plugin = (sys.modules if modules is None else modules).get("snakemake_executor_plugin_slurm")
    executor = getattr(plugin, "Executor", None)
    check = getattr(executor, "check_active_jobs", None)
    if getattr(check, "snakescope_capped", False):
        return True
    if check is None or not inspect.isasyncgenfunction(check):
        return False

    async def check_active_jobs(self: Any, active_jobs: Any) -> Any:
        async for job in check(self, active_jobs):
            yield job
        cap = self.workflow.remote_execution_settings.seconds_between_status_checks
        planned = getattr(self, "_next_seconds_between_status_checks", None)
        if cap and planned is not None and planned > cap:
            self.next_seconds_between_status_checks = cap

    check_active_jobs.snakescope_capped = True  # type: ignore[attr-defined]
    check_active_jobs.__doc__ = check.__doc__
    executor.check_active_jobs = check_active_jobs
    return True


def memoize_input_checksums(modules: Mapping[str, Any] | None = None) -> bool:
    """Make Snakemake's bookkeeping of a finished job linear in its files.

    When a job ends, Snakemake (9.x, ``PersistenceBase.finished``) writes a
    metadata record per output file, and for each of them asks every input
    file for its checksum again (existence, directory, size and symlink checks:
    ~4 ``stat`` calls per input). For a batch job that is outputs x inputs: a
    batch of 600 stills (1,806 outputs, 600 inputs) took 21 s of the main
    process after the batch itself had ended. This wraps ``finished`` so that,
    while it runs, an input's checksum is computed once per file and size
    threshold and reused for the other output files; the records are the same.
    Applied only when ``PersistenceBase.finished`` and ``_IOFile.checksum`` are the
    coroutines this was written against; otherwise nothing changes.

    Parameters
    ----------
    modules : mapping, optional
        Where to look for ``snakemake.persistence`` and ``snakemake.io``
        (default ``sys.modules``).

    Returns
    -------
    bool
        Whether the memo is in place.
    """
    import inspect

    loaded = sys.modules if modules is None else modules
    persistence = getattr(loaded.get("snakemake.persistence"), "PersistenceBase", None)
    iofile = getattr(loaded.get("snakemake.io"), "_IOFile", None)
    finished = getattr(persistence, "finished", None)
    checksum = getattr(iofile, "checksum", None)
    if getattr(finished, "snakescope_memo", False):
        return True
    if not (inspect.iscoroutinefunction(finished) and inspect.iscoroutinefunction(checksum)):
        return False
    memos: list[dict] = []  # one per finished() in progress (they may interleave)

    async def memo_checksum(self: Any, threshold: Any = None, force: bool = False, algorithm: Any = None) -> Any:
        if not memos or force or algorithm is not None:
            return await checksum(self, threshold, force, algorithm)
        memo = memos[-1]
        key = (str(self), threshold)
        if key not in memo:
            memo[key] = await checksum(self, threshold)
        return memo[key]

    async def memo_finished(self: Any, job: Any) -> Any:
        memo: dict = {}
        memos.append(memo)
        try:
            return await finished(self, job)
        finally:
            memos.remove(memo)

    memo_finished.snakescope_memo = True  # type: ignore[attr-defined]
    memo_finished.__doc__ = finished.__doc__
    memo_checksum.__doc__ = checksum.__doc__
    iofile.checksum = memo_checksum
    persistence.finished = memo_finished
    return True


def defer_garbage_collection() -> bool:
    """Turn Python's cyclic garbage collector off until the first step runs.

    While Snakemake parses the workflow and plans its DAG, every image adds
    objects that live until the end (sources, plans, jobs, files), and the
    collector traverses all of them again each time the number of objects
    grows by a quarter: at 100,000 images a quarter of a dry run (35-38 ->
    27-28 s) and of a cluster job's Snakemake start (4.3-4.5 -> 3.1-3.4 s,
    twice per SLURM job) went to collections that found almost nothing.
    :func:`resume_garbage_collection` (the workflow's ``onstart`` handler, and
    :func:`run`, through which every step and batch goes: a cluster job runs
    no handlers) turns it back on before anything runs; a process that runs
    no step (dry run, no-op rerun) ends without it. No effect on the warm
    pool's workers (their own interpreters).

    Returns
    -------
    bool
        Whether the collector was on (and is now off until it is resumed).
    """
    global _gc_deferred
    if not gc.isenabled():
        return False
    gc.disable()
    _gc_deferred = True
    return True


def resume_garbage_collection() -> None:
    """Turn the collector back on if :func:`defer_garbage_collection` turned it off
    (and never otherwise: a caller that disabled it keeps it disabled)."""
    global _gc_deferred
    if _gc_deferred:
        _gc_deferred = False
        gc.enable()


def warm_up() -> None:
    """Start the fork server now, in the background.

    It imports :data:`PRELOAD` (~1 s of CPU) before it forks the first worker;
    started while Snakemake still parses the workflow and builds its DAG, that
    import overlaps with them instead of delaying the first job. Does not wait.
    """
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()


def shutdown() -> None:
    """Stop the warm pool's workers now (every job is done).

    Python would otherwise wait, at exit, for each idle worker to tear down its
    interpreter (numpy, pandas, matplotlib, ...): about a second per run.
    """
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is None:
        return
    for process in list(getattr(pool, "_processes", {}).values()):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _get_pool(workers: int) -> ProcessPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != workers:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            _pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_worker_init)
            _pool_size = workers
        return _pool


def _reset_pool(broken: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is broken:
            _pool.shutdown(wait=False, cancel_futures=True)
            _pool = None


def _run_isolated(step: Callable[..., None], kwargs: Mapping[str, Any], log: str | None,
                  benchmark: str | None) -> str | None:
    """Run one job in a one-worker pool of its own (the retry after a broken pool)."""
    solo = ProcessPoolExecutor(max_workers=1, mp_context=_context(), initializer=_worker_init)
    try:
        return solo.submit(execute, step, dict(kwargs), log, benchmark).result()
    except BrokenProcessPool:
        return (f"{step.__name__}: the worker process died twice (killed, out of memory or crashed) "
                f"on this job; see {log or 'the log'}, check memory, and rerun")
    finally:
        solo.shutdown(wait=True, cancel_futures=True)


#: Columns of a benchmark record (those of Snakemake's ``benchmark:`` files that
#: a worker can measure for its own step).
BENCHMARK_COLUMNS = ("s", "h:m:s", "max_rss", "cpu_time", "io_in", "io_out")


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    """Peak resident memory (MiB) since the last reset (VmHWM), NaN if unknown."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _io_mb() -> tuple[float, float]:
    try:
        with open("/proc/self/io") as fh:
            values = dict(line.split(": ") for line in fh.read().splitlines())
        return int(values["read_bytes"]) / 2**20, int(values["write_bytes"]) / 2**20
    except (OSError, KeyError, ValueError):
        return float("nan"), float("nan")


def write_benchmark(path: str, *, seconds: float, max_rss_mb: float, cpu_s: float, io_in_mb: float,
                    io_out_mb: float) -> None:
    """Write one benchmark record (tab-separated, Snakemake's column names) atomically."""
    from .io import atomic_path

    h, rem = divmod(int(seconds), 3600)
    m, sec = divmod(rem, 60)
    row = [f"{seconds:.4f}", f"{h}:{m:02d}:{sec:02d}", f"{max_rss_mb:.2f}", f"{cpu_s:.4f}",
           f"{io_in_mb:.2f}", f"{io_out_mb:.2f}"]
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write("\t".join(BENCHMARK_COLUMNS) + "\n" + "\t".join(row) + "\n")


def _injected_crash(step: str, kwargs: Mapping[str, Any]) -> None:
    """Fault injection for the robustness tests: ``SNAKESCOPE_TEST_CRASH=<step>:<text>``
    kills this worker (SIGKILL, as the OOM killer would) when running ``step`` on
    arguments containing ``text``."""
    spec = os.environ.get("SNAKESCOPE_TEST_CRASH")
    if not spec:
        return
    name, _, text = spec.partition(":")
    if name == step and text in repr(sorted(kwargs.items())):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def execute(step: Callable[..., None], kwargs: Mapping[str, Any], log_path: str | None = None,
            benchmark_path: str | None = None) -> str | None:
    """Run ``step(**kwargs)`` (a function of :mod:`snakescope.steps`), logging to ``log_path``.

    Returns None on success or a one-line error message (the traceback goes to
    the log). With ``benchmark_path``, writes the step's wall time, CPU time,
    peak RSS (reset before the step) and I/O there. Runs in a worker process, or inline.
    """
    from .errors import InputError

    logger = logging.getLogger("snakescope")
    logger.setLevel(logging.INFO)
    handler: logging.Handler | None = None
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
    try:
        name = step.__name__
        logger.info("step %s (pid %d)", name, os.getpid())
        _injected_crash(name, kwargs)
        peak_ok = _reset_peak_rss()
        io0 = _io_mb()
        cpu0 = time.process_time()
        start = time.perf_counter()
        step(**kwargs)
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        io1 = _io_mb()
        rss = _peak_rss_mb() if peak_ok else float("nan")
        logger.info("done in %.3f s (cpu %.3f s, peak rss %.1f MiB)", seconds, cpu, rss)
        if benchmark_path:
            write_benchmark(benchmark_path, seconds=seconds, max_rss_mb=rss, cpu_s=cpu,
                            io_in_mb=io1[0] - io0[0], io_out_mb=io1[1] - io0[1])
        return None
    except InputError as exc:
        logger.error("%s\n%s", exc, traceback.format_exc())
        return str(exc)
    except Exception as exc:  # unexpected: still one line on the console, traceback in the log
        logger.error("unexpected error\n%s", traceback.format_exc())
        first = " ".join(str(exc).split())[:300]
        return f"{step.__name__}: {type(exc).__name__}: {first} (full traceback in {log_path or 'the log'})"
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            handler.close()


def run(step: Callable[..., None], kwargs: Mapping[str, Any], *, log: str | None = None, benchmark: str | None = None,
        workers: int = 1) -> None:
    """Run a step in the warm pool (or inline when ``workers`` is 0) and wait.

    Raises
    ------
    StepError
        With a one-line message when the step failed.
    """
    resume_garbage_collection()
    if workers <= 0 or os.environ.get("SNAKESCOPE_INLINE") == "1":
        message = execute(step, dict(kwargs), log, benchmark)
    else:
        # A worker that dies breaks the whole pool: every job in flight sees
        # BrokenProcessPool, not only the one whose worker died. Each is retried
        # once alone in a one-worker pool of its own, so a job that was merely in
        # flight succeeds and only the job that kills its worker again fails.
        pool = _get_pool(workers)
        try:
            message = pool.submit(execute, step, dict(kwargs), log, benchmark).result()
        except BrokenProcessPool:
            _reset_pool(pool)
            message = _run_isolated(step, kwargs, log, benchmark)
    if message:
        raise StepError(message)


def _frame_ranges(n_frames: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous, nearly equal ranges covering ``range(n_frames)``."""
    parts = max(1, min(parts, n_frames))
    edges = [round(i * n_frames / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def run_batch(image_step: Callable[..., None], plan: Mapping[str, Mapping[str, Any]], *,
              part: Callable[..., None], diameter: Callable[..., None], tables: Callable[..., None],
              tables_kwargs: Mapping[str, Any],
              frames: Mapping[str, int], splittable: bool, log: str, log_dir: str, benchmark_dir: str,
              threads: int, workers: int, intermediates: Callable[..., None] | None = None,
              intermediate_keys: Sequence[str] = (), record: str | None = None,
              record_plan: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Run the per-image chain of a batch of images in the warm pool, then its table shards.

    ``plan`` maps image name -> keyword arguments of ``image_step``. Up to
    ``threads`` images run at once. When the batch has fewer images than
    ``threads`` and ``splittable`` is true, the frames of each movie are split
    among the spare workers (``part`` on frame ranges, joined by ``image_step``;
    ``diameter`` first when the diameter is estimated), with results identical
    to one pass; the files of ``image_step``'s keywords ``intermediate_keys``
    (QC intermediates, when given) are then joined and written by
    ``intermediates``, beside ``image_step``'s join in another worker. ``tables`` then writes the batch's table shards from the
    images' tables (temporary files: ``image_step`` gets the keyword
    ``tables``, ``tables`` their list). Each image logs to ``log_dir/<image>.log``
    and writes a benchmark record to ``benchmark_dir/<image>.tsv``; ``log``
    lists the images, where their logs are and why the batch ran (compared with
    ``record``, the JSON of the plan of its last successful run, replaced by
    ``record_plan`` on success).

    Raises
    ------
    StepError
        Naming the first image that failed (the others of the batch still run).
    """
    import json
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    from .batching import plan_changes

    previous = None
    if record and os.path.exists(record):
        try:
            with open(record, encoding="utf-8") as fh:
                previous = json.load(fh)
        except (OSError, ValueError):
            previous = None
    current = json.loads(json.dumps(record_plan if record_plan is not None else plan, default=str))
    why = plan_changes(previous, current)
    threads = max(1, int(threads))
    os.makedirs(log_dir, exist_ok=True)
    split = max(1, threads // max(1, len(plan))) if splittable else 1
    # each image's tables, handed to ``tables`` in temporary files (pickles of
    # this job's own workers)
    table_dir = os.path.join(log_dir, ".tables")
    os.makedirs(table_dir, exist_ok=True)
    table_files = {name: os.path.join(table_dir, f"{i:06d}.pkl") for i, name in enumerate(plan)}

    def one(name: str) -> None:
        kwargs = {**plan[name], "tables": table_files[name]}
        unit_log = os.path.join(log_dir, f"{name}.log")
        benchmark = os.path.join(benchmark_dir, f"{name}.tsv")
        ranges = _frame_ranges(frames.get(name, 1), split)
        if len(ranges) < 2:
            run(image_step, kwargs, log=unit_log, benchmark=benchmark, workers=workers)
            return
        tmp = os.path.join(log_dir, f".parts-{name}")
        os.makedirs(tmp, exist_ok=True)
        try:
            common = {k: kwargs[k] for k in ("image", "name", "reading", "segment_settings", "settings", "rings",
                                             "saturation", "rods")}
            keep = {k: kwargs.pop(k) for k in intermediate_keys if kwargs.get(k)}  # QC images
            if kwargs["segment_settings"]["diameter"] == "auto":  # every part needs the estimate first
                run(diameter, {"image": kwargs["image"], "estimate": kwargs["estimate"], "name": name,
                                     "reading": kwargs["reading"], "channel": kwargs["segment_settings"]["channel"],
                                     "invert": kwargs["invert"]}, log=os.path.join(log_dir, f"{name}.diameter.log"),
                    workers=workers)
                common["estimate"] = kwargs["estimate"]
            paths = [os.path.join(tmp, f"{a:06d}.pkl") for a, _ in ranges]
            kept = [os.path.join(tmp, f"{a:06d}.intermediates.pkl") if keep else None for a, _ in ranges]
            with ThreadPoolExecutor(len(ranges)) as pool:
                futures = [pool.submit(run, part, {**common, "first": a, "stop": b, "part": p, "intermediates": k},
                                       log=os.path.join(log_dir, f"{name}.frames-{a}-{b}.log"), workers=workers)
                           for (a, b), p, k in zip(ranges, paths, kept)]
                for future in futures:
                    future.result()
            with ThreadPoolExecutor(2) as pool:
                futures = [pool.submit(run, image_step, {**kwargs, "parts": paths}, log=unit_log, benchmark=benchmark,
                                       workers=workers)]
                if keep:
                    futures.append(pool.submit(run, intermediates, {**keep, "parts": kept},
                                               log=os.path.join(log_dir, f"{name}.intermediates.log"),
                                               workers=workers))
                for future in futures:
                    future.result()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    names = list(plan)
    failures: list[str] = []
    start = time.perf_counter()
    with ThreadPoolExecutor(min(threads, len(names)) or 1) as pool:
        for name, future in zip(names, [pool.submit(one, n) for n in names]):
            try:
                future.result()
            except StepError as exc:
                failures.append(f"{name}: {exc}")
    try:
        if not failures:
            run(tables, {**tables_kwargs, "tables": [table_files[n] for n in names]},
                log=os.path.join(log_dir, "tables.log"), workers=workers)
    finally:
        shutil.rmtree(table_dir, ignore_errors=True)
    from .io import atomic_path

    with atomic_path(log) as tmp_log, open(tmp_log, "w", encoding="utf-8") as fh:
        fh.write(f"batch of {len(names)} image(s), {threads} at once"
                 f"{f', frames split {split} ways' if split > 1 else ''}; "
                 f"{time.perf_counter() - start:.2f} s\n")
        fh.write(f"per-image logs: {log_dir}/<image>.log\n")
        fh.writelines(f"why: {line}\n" for line in why)
        fh.writelines(f"image {n}\n" for n in names)
        fh.writelines(f"FAILED {f}\n" for f in failures)
    if record and not failures:
        with atomic_path(record) as tmp_record, open(tmp_record, "w", encoding="utf-8") as fh:
            json.dump(current, fh, sort_keys=True)
    if failures:
        more = f" (and {len(failures) - 1} more image(s) of this batch; see {log})" if len(failures) > 1 else ""
        raise StepError(failures[0] + more)
