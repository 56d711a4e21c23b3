"""Batched execution: stable batches and samples (snakescope.batching), frame
ranges of the runner, and the batch steps against the per-step ones (same bytes)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from snakescope import batching, io, steps
from snakescope import params as sparams
from snakescope.errors import InputError
from snakescope.runner import _frame_ranges


def _names(n, prefix="p"):
    return [f"{prefix}{i // 384:03d}_{i % 384:03d}" for i in range(n)]


def test_batches_cover_every_name_once_in_order_with_bounded_sizes():
    names = _names(5000)
    batches = batching.stable_batches(list(reversed(names)), batch_size=50)
    flat = [n for b in batches for n in b.images]
    assert flat == sorted(names)
    sizes = [len(b.images) for b in batches[:-1]]
    assert min(sizes) >= 25 and max(len(b.images) for b in batches) <= 75
    assert 40 <= np.mean(sizes) <= 60
    assert len({b.id for b in batches}) == len(batches)


def test_adding_a_plate_reruns_only_the_batches_it_falls_into():
    names = _names(384 * 20)
    before = {b.id: b.images for b in batching.stable_batches(names, batch_size=100)}
    added = names + [f"p010x_{i:03d}" for i in range(384)]  # a plate sorted between p010 and p011
    after = batching.stable_batches(added, batch_size=100)
    changed = [b for b in after if before.get(b.id) != b.images]
    assert len(changed) <= 384 // 25 + 2  # the new plate's batches and at most one or two neighbours
    untouched = sum(len(b.images) for b in after if before.get(b.id) == b.images)
    assert untouched >= len(names) - 200


def test_batch_size_one_and_errors():
    assert [b.images for b in batching.stable_batches(["b", "a"], batch_size=1)] == [["a"], ["b"]]
    with pytest.raises(InputError, match="batch_size"):
        batching.stable_batches(["a"], batch_size=0)
    with pytest.raises(InputError, match="not unique"):
        batching.stable_batches(["a", "a"], batch_size=3)


def test_stable_sample_keeps_most_of_itself_when_names_are_added():
    names = _names(1000)
    sample = batching.stable_sample(names, n=50)
    assert len(sample) == 50 and sample == sorted(sample)
    grown = batching.stable_sample(names + _names(100, prefix="q"), n=50)
    assert len(set(sample) & set(grown)) >= 40
    assert batching.stable_sample(names[:10], n=50) == sorted(names[:10])
    assert batching.stable_sample(names[:10], n=None) == sorted(names[:10])


def test_frame_ranges_cover_every_frame_once():
    for n, parts in [(27, 2), (1, 4), (3, 8), (10, 3), (100, 7)]:
        ranges = _frame_ranges(n, parts)
        assert [t for a, b in ranges for t in range(a, b)] == list(range(n))
        assert len(ranges) == min(n, parts)


def _movie(path: Path, n_frames=4):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :96]
    img = np.zeros((n_frames, 2, 96, 96), np.float32)
    for t in range(n_frames):
        for cy, cx in [(20, 20), (20, 34), (60, 60), (70, 25), (40, 75)]:
            cy, cx = cy + t, cx + t // 2
            img[t, 1][(yy - cy) ** 2 + (xx - cx) ** 2 <= 11 ** 2] += 300
            img[t, 0][(yy - cy) ** 2 + (xx - cx) ** 2 <= 7 ** 2] += 800 + 50 * t
    img += rng.normal(100, 10, img.shape)
    tifffile.imwrite(path, img.clip(0, 65535).astype(np.uint16), imagej=True, metadata={"axes": "TCYX"})


def _settings(tmp_path):
    import yaml
    from snakescope.config import apply_overrides

    schema = yaml.safe_load((Path(steps.__file__).parents[1] / "workflow/schemas/config.schema.yaml").read_text())
    cfg = {"datasets": {"d": {"images": "x/{image}.tif", "channels": ["nucleus", "erk"],
                              "segment": {"channel": "nucleus", "diameter": 4.5}}}}
    import jsonschema  # noqa: F401  (snakemake's dependency fills the defaults)
    from snakemake.utils import validate

    cfg = apply_overrides(cfg, schema, base=cfg)
    validate(cfg, schema=str(Path(steps.__file__).parents[1] / "workflow/schemas/config.schema.yaml"),
             set_default=True)
    return cfg["datasets"]["d"]


@pytest.mark.parametrize("split", [False, True])
def test_batch_image_writes_the_per_step_files_byte_for_byte(tmp_path, split):
    movie = tmp_path / "m.tif"
    _movie(movie)
    ds = _settings(tmp_path)
    # a pixel size (from the config) that a TIFF cannot store exactly: the per-step chain reads it
    # back from its intermediate files, the batched chain must compute with the same value
    reading = {**{k: ds[k] for k in ("axes", "channels", "frame_interval_s")}, "pixel_size_um": 0.3225806}
    seg = ds["segment"]
    per, bat = tmp_path / "per", tmp_path / "bat"
    per.mkdir(), bat.mkdir()
    p = {k: str(per / f) for k, f in [("smoothed", "s.tif"), ("mask", "m.tif"), ("table", "t.csv"),
                                       ("refined", "r.tif"), ("labels", "l.tif"), ("frames", "l.csv"),
                                       ("measurements", "me.csv"), ("ring_labels", "rl.tif"),
                                       ("ring_table", "rt.csv"), ("tracks", "tr.csv"), ("track_labels", "tl.tif")]}
    steps.smooth(image=str(movie), smoothed=p["smoothed"], reading=reading, channel="nucleus",
                 diameter=seg["diameter"], smooth=seg["smooth"])
    steps.threshold(smoothed=p["smoothed"], mask=p["mask"], table=p["table"], image="m", diameter=seg["diameter"],
                    threshold=seg["threshold"])
    steps.refine(mask=p["mask"], refined=p["refined"], diameter=seg["diameter"], refine=seg["refine"])
    settings = sparams.label_settings(seg, reading)
    steps.label(labels=p["labels"], frames=p["frames"], name="m", settings=settings, mask=p["refined"],
                smoothed=p["smoothed"], thresholds=p["table"])
    steps.measure(image=str(movie), labels=p["labels"], measurements=p["measurements"], name="m", reading=reading,
                  saturation=ds["saturation"])
    steps.rings(image=str(movie), labels=p["labels"], ring_labels=p["ring_labels"], ring_table=p["ring_table"],
                name="m", reading=reading, channel="nucleus", diameter=seg["diameter"], rings=ds["rings"])
    steps.track(labels=p["labels"], measurements=p["measurements"], tracks=p["tracks"],
                track_labels=p["track_labels"], name="m", diameter=seg["diameter"], track=ds["track"])

    outputs = {k: str(bat / Path(p[k]).name) for k in ("labels", "frames", "measurements", "ring_labels",
                                                          "ring_table", "tracks", "track_labels")}
    common = dict(image=str(movie), name="m", reading=reading, segment_settings=seg, settings=settings,
                  rings=ds["rings"], saturation=ds["saturation"], rods=False)
    parts, kept = [], []
    if split:
        assert sparams.frames_splittable(seg)
        for a, b in _frame_ranges(4, 2):
            parts.append(str(bat / f"part{a}.pkl"))
            kept.append(str(bat / f"kept{a}.pkl"))
            steps.batch_part(**common, first=a, stop=b, part=parts[-1], intermediates=kept[-1])
        # the QC intermediates of a split movie, joined beside the labels: the per-step files
        inter = {"smoothed": "s.tif", "mask": "m.tif", "threshold_table": "t.csv", "refined": "r.tif"}
        steps.batch_intermediates(parts=kept, **{k: str(bat / f) for k, f in inter.items()})
        for f in inter.values():
            assert (bat / f).read_bytes() == (per / f).read_bytes(), f
    # the per-image CSV tables are written only when asked for (here: not when split);
    # the dataset tables from the batch are the same either way
    tables_only = ("frames", "measurements", "ring_table", "ring_labels")
    given = {k: v for k, v in outputs.items() if not (split and k in tables_only)}
    steps.batch_image(**common, track=ds["track"], invert=False, parts=parts, tables=str(bat / "t.pkl"), **given)
    for key, path in outputs.items():
        if key in given:
            assert Path(path).read_bytes() == Path(p[key]).read_bytes(), key
        else:
            assert not Path(path).exists(), key
    assert pd.read_csv(p["frames"])["n_objects"].min() >= 4

    shards = [str(bat / "o.parquet"), str(bat / "i.parquet")]
    steps.batch_tables(tables=[str(bat / "t.pkl")], objects_shard=shards[0], images_shard=shards[1], dataset="d")
    meta = {"m": {"well": "A1"}}
    steps.tables(measurements=[p["measurements"]], rings=[p["ring_table"]], frames=[p["frames"]],
                 objects=str(per / "objects.csv"), images=str(per / "images.csv"), dataset="d", metadata=meta)
    steps.tables(objects_shards=[shards[0]], images_shards=[shards[1]], objects=str(bat / "objects.csv"),
                 images=str(bat / "images.csv"), objects_parquet=str(bat / "objects.parquet"), dataset="d",
                 metadata=meta)
    for name in ("objects.csv", "images.csv"):
        assert (bat / name).read_bytes() == (per / name).read_bytes(), name
    assert len(pd.read_parquet(bat / "objects.parquet")) == len(pd.read_csv(per / "objects.csv"))


def test_tables_from_several_shards_equal_one_concatenation(tmp_path):
    """Shards whose columns differ (no objects, int vs float) give the CSV one concat gives."""
    a = pd.DataFrame({"dataset": "d", "image": ["a", "a"], "frame": [0, 0], "label": [1, 2], "area_px": [10, 12],
                      "cn_erk": [1.5, 2.25], "cn_reason": [None, None]})
    b = pd.DataFrame({"dataset": "d", "image": ["b"], "frame": [0], "label": [1], "area_px": [1234567.0]})
    c = pd.DataFrame({"dataset": "d", "image": ["c"], "frame": [1], "label": [3], "area_px": [7],
                      "cn_erk": [np.nan], "cn_reason": ["no ring"]})
    paths = []
    for i, t in enumerate((a, b, c)):
        paths.append(str(tmp_path / f"{i}.parquet"))
        io.write_parquet(t, paths[-1])
    steps._stream_shards(paths, str(tmp_path / "s.csv"), str(tmp_path / "s.parquet"), {})
    whole = pd.concat([a, b, c], ignore_index=True)
    whole["cn_reason"] = whole["cn_reason"].fillna("")
    io.write_table(whole, tmp_path / "w.csv")
    assert (tmp_path / "s.csv").read_text() == (tmp_path / "w.csv").read_text()
    # the Parquet file is the table read_csv gives for the whole CSV (per_step's), not the shards' types
    whole_table = io.read_table(tmp_path / "s.csv")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), whole_table, check_exact=True)
    assert whole_table["area_px"].dtype == np.float64 and whole_table["label"].dtype == np.int64


@pytest.mark.parametrize("mixed_text", [False, True])
def test_parquet_of_several_shards_has_the_csv_values_and_types(tmp_path, mixed_text):
    """Unrounded floats, missing values in some shards only, booleans, and (mixed_text)
    a column that reads as numbers in one shard and as text in another."""
    a = pd.DataFrame({"image": ["a", "a"], "x": [1 / 3, 2.0], "n": [1, 2], "flag": [True, False],
                      "reason": [None, None], "nothing": [np.nan, np.nan], "well": ["01", "02"]})
    b = pd.DataFrame({"image": ["b"], "x": [5.0], "n": [3], "flag": [True], "reason": ["no ring"],
                      "nothing": [np.nan], "well": ["B2" if mixed_text else "03"]})
    paths = []
    for i, t in enumerate((a, b)):
        paths.append(str(tmp_path / f"{i}.parquet"))
        io.write_parquet(t, paths[-1])
    steps._stream_shards(paths, str(tmp_path / "s.csv"), str(tmp_path / "s.parquet"), {"a": {"plate": "P1"}})
    expected = io.read_table(tmp_path / "s.csv")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), expected, check_exact=True)
    assert expected["x"].tolist() == [0.333333, 2.0, 5.0] and "meta_plate" in expected


def test_plan_changes_say_why_a_batch_runs_again():
    before = {"a": {"content": "1", "rings": {"width": 2}}, "b": {"content": "2", "rings": {"width": 2}}}
    after = {"a": {"content": "9", "rings": {"width": 2}}, "b": {"content": "2", "rings": {"width": 3}},
             "c": {"content": "3", "rings": {"width": 3}}}
    assert batching.plan_changes(None, after) == ["first run of this batch"]
    assert batching.plan_changes(before, after) == ["new image c", "image a: its file(s) changed",
                                                    "image b: rings changed"]
    assert "unchanged" in batching.plan_changes(before, before)[0]


def test_which_snakemake_processes_warm_up_the_pool(monkeypatch):
    """The pool is started where steps run: a local run, the Snakemake a SLURM job starts
    with srun; not a dry run, the submitting process of a SLURM run, nor a job's job step."""
    from snakescope.runner import runs_steps_here

    monkeypatch.delenv("SNAKESCOPE_INLINE", raising=False)
    assert runs_steps_here(["--cores", "2", "--configfile", "my.yaml"])
    assert runs_steps_here(["--target-jobs", "batch_d_0a:", "--mode", "remote"])
    for argv in (["-n"], ["-np", "--cores", "2"], ["--dry-run"], ["--list-rules"], ["--report=r.html"],
                 ["--executor", "slurm", "--jobs", "10"], ("-e", "slurm"),
                 ["--executor", "slurm-jobstep", "--jobs", "1", "--mode", "remote"]):
        assert not runs_steps_here(argv), argv
    monkeypatch.setenv("SNAKESCOPE_INLINE", "1")
    assert not runs_steps_here(["--cores", "2"])


@pytest.mark.parametrize("ending, status", [("sys.exit(3)", 3), ("sys.exit(0)", 0), ("sys.exit()", 0),
                                            ("raise SystemExit(5)", 5), ("raise ValueError('x')", 1)])
def test_exit_without_finalization_keeps_the_status_output_and_later_exit_handlers(ending, status):
    import subprocess
    import sys

    # a handler registered before the hook stands for the interpreter's finalization: skipped
    # after sys.exit, kept when the program ends otherwise
    code = ("import atexit, sys\natexit.register(lambda: print(';finalized', end=''))\n"
            "from snakescope import runner\nrunner.exit_without_finalization()\n"
            "atexit.register(lambda: print('clean-up ran', end=''))\n"
            "sys.stdout.write('unflushed;')\n" + ending + "\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=str(Path(__file__).resolve().parents[1]))
    assert res.returncode == status, res.stderr
    fast = ending.startswith("sys.exit")
    assert res.stdout == "unflushed;clean-up ran" + ("" if fast else ";finalized")


def test_garbage_collection_is_deferred_until_the_first_step(tmp_path):
    """The workflow turns the collector off while it is parsed and planned; the first step (or
    onstart) turns it back on, and a collector someone else turned off stays off."""
    import os
    import subprocess
    import sys

    code = """
import gc
from snakescope import runner
def noop(**kwargs):
    pass
assert gc.isenabled()
assert runner.defer_garbage_collection() and not gc.isenabled()
assert not runner.defer_garbage_collection() and not gc.isenabled()
runner.run(noop, {}, workers=0)
assert gc.isenabled()
runner.resume_garbage_collection()
assert gc.isenabled()
assert runner.defer_garbage_collection()
runner.run_batch(noop, {}, part=noop, diameter=noop, tables=noop, tables_kwargs={}, frames={}, splittable=False,
                 log='batch.log', log_dir='logs', benchmark_dir='bench', threads=1, workers=0)
assert gc.isenabled()
gc.disable()
assert not runner.defer_garbage_collection()
runner.run(noop, {}, workers=0)
assert not gc.isenabled()
print('ok', end='')
"""
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": str(root)})
    assert res.returncode == 0 and res.stdout == "ok", res.stderr


def test_allowed_rules_from_the_command_line_of_a_cluster_job():
    from snakescope.runner import allowed_rules

    assert allowed_rules(["--cores", "2"]) is None
    job = ["--target-jobs", "batch_d_0a:", "--allowed-rules", "batch_d_0a", "--cores", "all", "--mode", "remote"]
    assert allowed_rules(job) == {"batch_d_0a"}
    assert allowed_rules(["--allowed-rules", "smooth", "label", "--jobs", "1"]) == {"smooth", "label"}
    assert allowed_rules(["--allowed-rules=smooth label"]) == {"smooth", "label"}


def test_slurm_polling_interval_is_capped_at_the_snakemake_flag():
    import asyncio
    import types

    from snakescope.runner import cap_slurm_polling

    class Executor:  # the plugin's back-off: +10 s after a check that finds no finished job
        async def check_active_jobs(self, active_jobs):
            for job in active_jobs:
                if job != "done":
                    yield job
            self._next_seconds_between_status_checks = 10 + (self._next_seconds_between_status_checks or 0)

        @property
        def next_seconds_between_status_checks(self):
            return self._next_seconds_between_status_checks

        @next_seconds_between_status_checks.setter
        def next_seconds_between_status_checks(self, value):
            self._next_seconds_between_status_checks = value

    def polls(flag):
        executor = Executor()
        executor._next_seconds_between_status_checks = None
        executor.workflow = types.SimpleNamespace(
            remote_execution_settings=types.SimpleNamespace(seconds_between_status_checks=flag))

        async def one_check():
            return [job async for job in executor.check_active_jobs(["a", "done", "b"])]

        still = [asyncio.run(one_check()) for _ in range(3)]
        assert still == [["a", "b"]] * 3  # the jobs still running are passed on unchanged
        return executor.next_seconds_between_status_checks

    assert polls(4) == 30  # the plugin as it is: 10, 20, 30 s
    plugin = types.SimpleNamespace(Executor=Executor)
    assert cap_slurm_polling({"snakemake_executor_plugin_slurm": plugin})
    assert cap_slurm_polling({"snakemake_executor_plugin_slurm": plugin})  # once, not wrapped twice
    assert polls(4) == 4
    assert polls(60) == 30  # a back-off below the flag is kept
    assert not cap_slurm_polling({})  # plugin not loaded: nothing to do

    class Other:
        def check_active_jobs(self, active_jobs):  # not the async generator it was written for
            return active_jobs

    assert not cap_slurm_polling({"snakemake_executor_plugin_slurm": types.SimpleNamespace(Executor=Other)})


def test_input_checksums_are_computed_once_per_finished_job():
    import asyncio
    import types

    from snakescope.runner import memoize_input_checksums

    calls = []

    class IOFile(str):
        async def checksum(self, threshold=None, force=False, algorithm=None):
            calls.append((str(self), threshold, force))
            await asyncio.sleep(0)  # a real await point: finished() calls may interleave
            return f"sha256:{self}:{threshold}"

    class PersistenceBase:  # Snakemake's loop: every input asked again for every output
        async def finished(self, job):
            return [{str(f): await f.checksum(1000) for f in job.input} for _ in job.output]

    job = types.SimpleNamespace(input=[IOFile(f"in{i}") for i in range(5)], output=[f"out{i}" for i in range(7)])
    before = asyncio.run(PersistenceBase().finished(job))
    assert len(calls) == 35
    modules = {"snakemake.persistence": types.SimpleNamespace(PersistenceBase=PersistenceBase),
               "snakemake.io": types.SimpleNamespace(_IOFile=IOFile)}
    assert memoize_input_checksums(modules)
    assert memoize_input_checksums(modules)  # once, not wrapped twice
    calls.clear()
    assert asyncio.run(PersistenceBase().finished(job)) == before  # the same records
    assert len(calls) == 5  # once per input

    async def two_jobs():
        return await asyncio.gather(PersistenceBase().finished(job), PersistenceBase().finished(job))

    calls.clear()
    assert asyncio.run(two_jobs()) == [before, before]
    assert len(calls) <= 10
    calls.clear()  # outside finished() nothing is cached, and force/algorithm always compute
    asyncio.run(job.input[0].checksum(1000))
    asyncio.run(job.input[0].checksum(1000))
    assert len(calls) == 2
    assert not memoize_input_checksums({})  # Snakemake's modules not loaded: nothing to do
