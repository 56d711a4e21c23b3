# Shared by all rule files. In order - config loading, image discovery, params
# functions, input functions, the step call, targets. Domain logic lives in the
# library: discovery in snakescope.config, config conversion in snakescope.params,
# code versions and provenance in snakescope.provenance, steps in snakescope.steps.

import functools
import hashlib
import os
import sys
from pathlib import Path

from snakemake.iocontainers import Wildcards
from snakemake.utils import min_version, validate

min_version("9.0")

import logging

# A full disk makes every log write fail; Python's logging would print a
# traceback for each ("--- Logging error ---"), burying the one line that says
# what happened. The failing step still reports "no space left on device".
logging.raiseExceptions = False

sys.path.insert(
    0, workflow.basedir
)  # the library next to the Snakefile, installed or not
# light: starts the warm pool (below) before the heavy imports
from snakescope import runner

# No cyclic garbage collection while the workflow is parsed and planned (a quarter of
# a dry run at 100,000 images); back on in onstart and at the first step
runner.defer_garbage_collection()
if runner.runs_steps_here(sys.argv[1:]):
    runner.warm_up()  # the pool's imports overlap with this process's imports, parsing and the DAG
    runner.exit_without_finalization()  # ~0.4 s of module teardown at the end of every run
# The SLURM plugin backs off to polling every 180 s; poll at least every
# --seconds-between-status-checks (default 10 s) so finished jobs are noticed
runner.cap_slurm_polling()
# Snakemake re-checks every input once per output when a job ends: quadratic for batches
runner.memoize_input_checksums()

from snakescope import params as sparams
from snakescope import provenance, steps
from snakescope.batching import stable_batches, stable_sample
from snakescope import io as sio
from snakescope.config import (
    apply_overrides,
    check_config,
    discover_images,
    expand_scenes,
    image_metadata,
    load_yaml_strict,
)
from snakescope.errors import InputError


def _fail(message):
    """Stop the workflow with one line naming the config key or file (no traceback)."""
    print(f"snakescope error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


# ---- config ---------------------------------------------------------------

try:
    _from_files = {}
    for _path in workflow.configfiles:  # duplicate keys (e.g. two datasets of one name)
        _from_files.update(load_yaml_strict(str(_path)) or {})
    _schema = load_yaml_strict(workflow.source_path("../schemas/config.schema.yaml"))
    _resolved = apply_overrides(config, _schema, base=_from_files)  # --config forms
    config.clear()
    config.update(_resolved)
    check_config(config, _schema)
except InputError as exc:
    _fail(str(exc))
validate(config, schema="../schemas/config.schema.yaml", set_default=True)

#: Rules after the per-image chain run in this process, not as cluster jobs
#: (``localrule:`` of each; no effect on a local run).
LOCAL_RULES = bool(config["execution"]["local_rules"])


def _discover(name, ds):
    ignored = []
    try:
        found = expand_scenes(
            discover_images(
                name, ds["images"], channels=ds["channels"], ignored=ignored
            ),
            key=f"datasets.{name}.images",
        )
    except InputError as exc:
        _fail(str(exc))
    if ignored:
        print(
            f"snakescope: datasets.{name}.images: ignored {len(ignored)} hidden file(s) such as "
            f"{ignored[0]} (macOS ._ companions, dot files)",
            file=sys.stderr,
        )
    unknown = sorted(set(ds["conditions"]) - set(found))
    if unknown:
        _fail(
            f"config key datasets.{name}.conditions: {unknown[0]!r} is not an image of the dataset "
            f"(images: {', '.join(list(found)[:5])}{', ...' if len(found) > 5 else ''}); fix the name"
        )
    return found


DATASETS = {name: _discover(name, ds) for name, ds in config["datasets"].items()}


def _metadata(name, ds):
    try:
        meta = image_metadata(
            DATASETS[name], ds["samples"], key=f"datasets.{name}.samples"
        )
    except InputError as exc:
        _fail(str(exc))
    group_by = config["figures"]["group_by"]
    if group_by and not all(group_by in m for m in meta.values()):
        have = sorted({k for m in meta.values() for k in m})
        _fail(
            f"config key figures.group_by: {group_by!r} is not metadata of every image of dataset {name} "
            f"(metadata: {', '.join(have) or 'none'}); add it to datasets.{name}.samples or fix the name"
        )
    return meta


METADATA = {name: _metadata(name, ds) for name, ds in config["datasets"].items()}


def images(dataset):
    """Sorted image names of a dataset."""
    return list(DATASETS[dataset])


def source(wildcards):
    try:
        return DATASETS[wildcards.dataset][wildcards.image]
    except KeyError:
        _fail(f"image {wildcards.image!r} is not in dataset {wildcards.dataset!r}")


_frames_cache = {}


def n_frames(dataset, name):
    """Frames of an image (from the file layout or the header, read once)."""
    src = DATASETS[dataset][name]
    if src.n_frames is not None:
        return src.n_frames
    path = src.files[0]
    key = (path, src.scene)
    if key not in _frames_cache:
        if not os.path.exists(path):
            _fail(
                f"image file {path} of dataset {dataset} is missing (or a broken link); restore it or "
                f"remove it from datasets.{dataset}.images"
            )
        try:
            ds = config["datasets"][dataset]
            _frames_cache[key] = sio.frame_count(
                path, axes=ds["axes"], scene=src.scene, z_projection=ds["z_projection"]
            )
        except InputError as exc:
            _fail(str(exc))
    return _frames_cache[key]


@functools.lru_cache(maxsize=None)
def tracked_images(dataset):
    """Images of {dataset} that are tracked: all (track.enabled true), none
    (false), or those with more than one frame (auto). Computed once per
    dataset: it is asked for every batch and image (quadratic otherwise)."""
    enabled = config["datasets"][dataset]["track"]["enabled"]
    if enabled is True or enabled is False:
        return list(images(dataset)) if enabled else []
    return [name for name in images(dataset) if n_frames(dataset, name) > 1]


@functools.lru_cache(maxsize=None)
def _tracked_set(dataset):
    return frozenset(tracked_images(dataset))


def is_tracked(dataset, image):
    return image in _tracked_set(dataset)


def segment_method(dataset):
    return config["datasets"][dataset]["segment"]["method"]


# ---- params functions -----------------------------------------------------


def dataset_key(path):
    """Params function: the value at datasets/{dataset}/<path> of the config
    (a plain dict walk: snakemake's lookup(dpath=...) costs 15 % of the DAG
    build with thousands of images)."""
    keys = [k for k in path.split("/") if k]

    def value(wildcards):
        node = config["datasets"][wildcards.dataset]
        for key in keys:
            node = node[key]
        return node

    return value


def segment_key(key):
    """Params function: datasets/{dataset}/segment/<key>."""
    return dataset_key(f"segment/{key}")


def dataset_config(wildcards):
    """Params function: the whole (resolved) config of {dataset}."""
    return config["datasets"][wildcards.dataset]


def reading(wildcards):
    """Params function: how to read the raw images of {dataset} (with the
    frame x channel layout of images assembled from many files)."""
    ds = config["datasets"][wildcards.dataset]
    out = {k: ds[k] for k in ("axes", "channels", "pixel_size_um", "frame_interval_s")}
    src = source(wildcards)
    if src.scene is not None:
        out["scene"] = src.scene
    if ds["z_projection"]:
        out["z_projection"] = ds["z_projection"]
    if src.grid is not None:
        out["grid"] = list(src.grid)
        if src.channels is not None:
            out["channels"] = src.channels
    return out


def dataset_metadata(wildcards):
    """Params function: image name -> metadata (pattern fields, sample sheet) of {dataset}."""
    return METADATA[wildcards.dataset]


def figure_groups(wildcards):
    """Params function: image -> group shown side by side (figures.group_by, else conditions)."""
    group_by = config["figures"]["group_by"]
    if group_by:
        return {image: m[group_by] for image, m in METADATA[wildcards.dataset].items()}
    return config["datasets"][wildcards.dataset]["conditions"]


def label_settings(wildcards):
    """Params function: what rule label's method uses (snakescope.params.label_settings)."""
    return sparams.label_settings(
        config["datasets"][wildcards.dataset]["segment"], reading(wildcards)
    )


def is_rods(wildcards):
    return segment_method(wildcards.dataset) == "log_edges"


def tracked_image_names(wildcards):
    """Params function: names of the tracked images of {dataset}, in input order."""
    return tracked_images(wildcards.dataset)


def figures_settings():
    """The figures section, with the style file found next to the workflow when
    it is not in the working directory (runs with --directory elsewhere)."""
    settings = dict(config["figures"])
    style = settings["style"]
    if not os.path.exists(style) and not os.path.isabs(style):
        candidate = os.path.join(workflow.basedir, style)
        if os.path.exists(candidate):
            settings["style"] = candidate
    if not os.path.exists(settings["style"]):
        _fail(
            f"config key figures.style: style file {style} not found; give the path of a matplotlib style file"
        )
    return settings


def _fingerprint(paths):
    """Size, modification and status-change time of files: a file replaced by
    other content keeps no old fingerprint, even with its old mtime (cp -p)."""
    h = hashlib.sha256()
    for path in paths:
        try:
            st = os.stat(path)
            h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns};".encode())
        except OSError:
            h.update(f"{path}:missing;".encode())
    return h.hexdigest()[:16]


def image_fingerprint(wildcards):
    """Params function: fingerprint of the raw file(s) of {dataset}/{image}
    (rules reading them rerun when the content changes, whatever its mtime)."""
    return _fingerprint(source(wildcards).files)


def dataset_fingerprint(wildcards):
    """Params function: fingerprint of every input file of {dataset} (provenance)."""
    raw = [
        f
        for name in images(wildcards.dataset)
        for f in DATASETS[wildcards.dataset][name].files
    ]
    return _fingerprint(raw + dataset_ground_truth(wildcards))


_style_hash = []


def style_fingerprint():
    """Hash of the figure style file's content: editing it reruns the figures."""
    if not _style_hash:
        _style_hash.append(provenance.sha256(figures_settings()["style"])[:16])
    return _style_hash[0]


def qc_fingerprint(wildcards):
    """Params function: the raw image's fingerprint and the style's (QC images)."""
    return image_fingerprint(wildcards) + style_fingerprint()


def code_version(step_function):
    """Params value: hash of the library code ``step_function`` runs (rerun on
    change), kept between runs in the user's cache folder."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return provenance.cached_code_version(
        step_function, cache_dir=os.path.join(base, "snakescope")
    )


# ---- input functions ------------------------------------------------------


def _escaped(path):
    """A path Snakemake can take as input. Snakemake reads braces in input paths
    as wildcards, even in paths from input functions, so a file or folder name
    with braces (well{A1}.tif, exp{2}/) is reached through a symbolic link
    without them, under .snakemake/snakescope_links/ (made once, at start-up)."""
    if "{" not in path and "}" not in path:
        return path
    target = os.path.abspath(path)
    digest = hashlib.sha256(target.encode()).hexdigest()[:12]
    name = os.path.basename(path).replace("{", "_").replace("}", "_")
    link = os.path.join(".snakemake", "snakescope_links", digest, name)
    if os.path.realpath(link) != os.path.realpath(target):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(target, link)
    return link


def image_files(wildcards):
    """Input function: the raw file of {dataset}/{image} (a list for images
    assembled from one file per frame or channel)."""
    files = [_escaped(f) for f in source(wildcards).files]
    return files[0] if len(files) == 1 and source(wildcards).grid is None else files


def dataset_images(wildcards):
    """Input function: every raw file of {dataset}."""
    return [
        _escaped(f)
        for name in images(wildcards.dataset)
        for f in DATASETS[wildcards.dataset][name].files
    ]


def per_image(pattern):
    """Input function: ``pattern`` expanded over every image of {dataset}."""

    def inputs(wildcards):
        return expand(
            pattern, dataset=wildcards.dataset, image=images(wildcards.dataset)
        )

    return inputs


def per_tracked_image(pattern):
    """Input function: ``pattern`` expanded over the tracked images of {dataset}."""

    def inputs(wildcards):
        return expand(
            pattern, dataset=wildcards.dataset, image=tracked_images(wildcards.dataset)
        )

    return inputs


#: Ground-truth kinds -> the dataset's config key holding the pattern.
GROUND_TRUTH = {
    "labels": "ground_truth",
    "cn": "ground_truth_cn.table",
    "sizes": "ground_truth_sizes",
    "tracks": "ground_truth_tracks",
    "ctc": "ground_truth_ctc",
}


def ground_truth_pattern(dataset, kind):
    node = config["datasets"][dataset]
    for key in GROUND_TRUTH[kind].split("."):
        node = node[key]
    return node


def ground_truth(kind):
    """Input function: the ground-truth file of ``kind`` of {dataset}/{image}."""

    def path(wildcards):
        return ground_truth_pattern(wildcards.dataset, kind).format(
            image=wildcards.image
        )

    return path


def _check_ground_truth_patterns():
    """A ground-truth path without {image} is only for a dataset of one image."""
    for name in config["datasets"]:
        for kind, key in GROUND_TRUTH.items():
            pattern = ground_truth_pattern(name, kind)
            if pattern and "{image}" not in pattern and len(images(name)) > 1:
                _fail(
                    f"config key datasets.{name}.{key}: {pattern!r} has no {{image}} but the "
                    f"dataset has {len(images(name))} images; write a pattern with {{image}}"
                )


_check_ground_truth_patterns()


def dataset_ground_truth(wildcards):
    """Input function: every ground-truth file of {dataset} (labels, C/N tables,
    the files of CTC ground-truth folders)."""
    files = []
    for kind in ("labels", "cn", "ctc"):
        pattern = ground_truth_pattern(wildcards.dataset, kind)
        if not pattern:
            continue
        for path in sorted(
            {pattern.format(image=i) for i in images(wildcards.dataset)}
        ):
            if kind == "ctc" and os.path.isdir(path):
                files += sorted(str(p) for p in Path(path).rglob("*") if p.is_file())
            else:
                files.append(path)
    return files


def diameter_input(wildcards):
    """Input function (unpacked): the estimated diameter of {dataset}/{image}
    when segment.diameter is auto (rule diameter), else nothing."""
    if config["datasets"][wildcards.dataset]["segment"]["diameter"] == "auto":
        return {"diameter_estimate": rules.diameter.output.estimate.format(**wildcards)}
    return {}


def diameter_invert(wildcards):
    """Params function: objects darker than the background (rods in phase contrast)."""
    seg = config["datasets"][wildcards.dataset]["segment"]
    return seg["method"] == "log_edges" and bool(seg["log_edges"]["invert"])


def label_inputs(wildcards):
    """Input function (unpacked): what rule label reads for the dataset's method."""
    method = segment_method(wildcards.dataset)
    if method == "threshold":
        return {
            **diameter_input(wildcards),
            "mask": rules.refine.output.refined.format(**wildcards),
            "smoothed": rules.smooth.output.smoothed.format(**wildcards),
            "thresholds": rules.threshold.output.table.format(**wildcards),
        }
    inputs = {"image": image_files(wildcards), **diameter_input(wildcards)}
    if method == "labels":
        pattern = config["datasets"][wildcards.dataset]["segment"]["labels"]
        if not pattern:
            _fail(
                f"config key datasets.{wildcards.dataset}.segment.labels: method 'labels' needs the pattern "
                "of the label images, e.g. 'labels/{image}_labels.tif'"
            )
        inputs["external_labels"] = pattern.format(image=wildcards.image)
    return inputs


def qc_threshold_inputs(wildcards):
    """Input function (unpacked): smoothed image, mask and thresholds for the QC
    histogram and mask panels (threshold method only)."""
    if segment_method(wildcards.dataset) != "threshold":
        return {}
    return {
        "smoothed": rules.smooth.output.smoothed.format(**wildcards),
        "mask": rules.refine.output.refined.format(**wildcards),
        "frames": rules.label.output.frames.format(**wildcards),
    }


def tracks_of_image(wildcards):
    """Input function: the track table of a tracked image (none for stills)."""
    if is_tracked(wildcards.dataset, wildcards.image):
        return rules.track.output.tracks.format(**wildcards)
    return []


def traces_of_dataset(wildcards):
    """Input function: the dataset's traces table when it has tracked images."""
    if tracked_images(wildcards.dataset):
        return rules.traces.output.traces_table.format(**wildcards)
    return []


def table_inputs(wildcards):
    """Input function (unpacked) for the tables rule - the per-image tables (per_step)
    or the Parquet shards of the batches (batched)."""
    if BATCHED:
        shards = batch_shards(wildcards.dataset)
        return {"objects_shards": shards[0::2], "images_shards": shards[1::2]}
    return {
        "measurements": per_image(rules.measure.output.measurements)(wildcards),
        "rings": per_image(rules.rings.output.ring_table)(wildcards),
        "frames": per_image(rules.label.output.frames)(wildcards),
    }


# ---- batched execution ----------------------------------------------------

EXECUTION = config["execution"]
#: execution.mode auto: batched from this many images in the run (per_step below:
#: every intermediate file, finest reruns, for tuning on a few images).
AUTO_BATCHED_IMAGES = 50


def _batched(mode):
    if mode != "auto":
        return mode == "batched"
    return sum(len(images(name)) for name in config["datasets"]) >= AUTO_BATCHED_IMAGES


BATCHED = _batched(EXECUTION["mode"])


def batch_files():
    """Per-image files every batch writes: the label image of rule label."""
    return {"labels": rules.label.output.labels}


def batch_files_needed(dataset, name):
    """Per-image files a batch writes only for the images a later per-image step
    reads them for (the tables' rows are in the batch's shards): the ring label
    image and the frames table for the QC images, measurements and rings tables
    for validation against size and C/N ground truth."""
    ds = config["datasets"][dataset]
    files = {}
    if name in _qc_set(dataset):
        files["ring_labels"] = rules.rings.output.ring_labels
        if segment_method(dataset) == "threshold":
            files["frames"] = rules.label.output.frames
    if ds["ground_truth"] and ds["ground_truth_sizes"]:
        files["measurements"] = rules.measure.output.measurements
    if ds["ground_truth"] and ds["ground_truth_cn"]["table"]:
        files["ring_table"] = rules.rings.output.ring_table
    return files


def track_files():
    """... and of rule track, for the tracked images."""
    return {
        "tracks": rules.track.output.tracks,
        "track_labels": rules.track.output.track_labels,
    }


def intermediate_files():
    """... and of rules smooth, threshold and refine, for the images that get QC images."""
    return {
        "smoothed": rules.smooth.output.smoothed,
        "mask": rules.threshold.output.mask,
        "threshold_table": rules.threshold.output.table,
        "refined": rules.refine.output.refined,
    }


BATCH_SHARDS = (
    "results/{dataset}/batches/{batch}.objects.parquet",
    "results/{dataset}/batches/{batch}.images.parquet",
)
BATCHES = {}
if BATCHED:
    for _name in config["datasets"]:
        try:
            BATCHES[_name] = stable_batches(
                images(_name), batch_size=EXECUTION["batch_size"]
            )
        except InputError as exc:
            _fail(f"config key execution.batch_size: {exc}")


def batch_shards(dataset):
    """The Parquet shards of every batch of {dataset} (objects, images alternating)."""
    return [
        p.format(dataset=dataset, batch=b.id)
        for b in BATCHES[dataset]
        for p in BATCH_SHARDS
    ]


def batch_rule_name(dataset, batch):
    return f"batch_{dataset.replace('-', '_')}_{batch.id}"


def batch_plan(dataset, batch):
    """Everything a batch job runs: per image, the keyword arguments of
    steps.batch_image (inputs, settings, outputs)."""
    ds = config["datasets"][dataset]
    tracked = {name for name in batch.images if is_tracked(dataset, name)}
    auto = ds["segment"]["diameter"] == "auto"
    # the images that get QC images also get the files of smooth/threshold/refine
    # (the QC threshold panels), from the batch instead of a second pass
    with_qc = _qc_set(dataset) if segment_method(dataset) == "threshold" else set()
    plan = {}
    for name in batch.images:
        wc = Wildcards(fromdict={"dataset": dataset, "image": name})
        kwargs = {
            "image": image_files(wc),
            "name": name,
            "reading": reading(wc),
            "segment_settings": ds["segment"],
            "settings": label_settings(wc),
            "rings": ds["rings"],
            "saturation": ds["saturation"],
            "rods": is_rods(wc),
            "track": ds["track"] if name in tracked else None,
            "invert": diameter_invert(wc),
            "content": image_fingerprint(wc),
        }
        outputs = {**batch_files(), **batch_files_needed(dataset, name)}
        if name in tracked:
            outputs.update(track_files())
        if auto:
            outputs["estimate"] = rules.diameter.output.estimate
        if name in with_qc:
            outputs.update(intermediate_files())
        kwargs.update(
            {k: v.format(dataset=dataset, image=name) for k, v in outputs.items()}
        )
        if segment_method(dataset) == "labels":
            kwargs["external_labels"] = label_inputs(wc)["external_labels"]
        plan[name] = kwargs
    return plan


def batch_outputs(dataset, batch, plan):
    """Named outputs of a batch rule: the shards, then every per-image file.
    The shards come first: Snakemake finds which rule makes a requested file by
    trying the rule's outputs in order (a regular expression each), and the
    shards are what other rules ask for."""
    shards = [p.format(dataset=dataset, batch=batch.id) for p in BATCH_SHARDS]
    out = {"objects_shard": shards[0], "images_shard": shards[1]}
    # then the files of few images (QC, validation, tracks) and the QC images'
    # label images first, for the same reason: rule qc asks for them
    qc = _qc_set(dataset)
    ordered = sorted(plan, key=lambda name: name not in qc)
    keys = [
        *intermediate_files(),
        "frames",
        "measurements",
        "ring_table",
        *track_files(),
        "estimate",
        "ring_labels",
        *batch_files(),
    ]
    for key in keys:
        files = [plan[name][key] for name in ordered if key in plan[name]]
        if files:
            out[key] = files
    return out


def batch_inputs(plan):
    """Inputs of a batch rule: the raw files (and external labels) of its images."""
    files = []
    for kwargs in plan.values():
        image = kwargs["image"]
        files += [image] if isinstance(image, str) else list(image)
        if "external_labels" in kwargs:
            files.append(kwargs["external_labels"])
    return files


def batch_is_small(inputs):
    """Whether a batch runs in this Snakemake process on a cluster (execution.local_rules
    and its raw files, batch_inputs, total less than execution.local_batch_mb): a SLURM
    job costs ~5 s of start-up and a queue wait for a few seconds of work. Stops reading
    file sizes as soon as the limit is passed."""
    limit = EXECUTION["local_batch_mb"] * 1e6
    if not LOCAL_RULES or limit <= 0:
        return False
    total = 0
    for path in inputs:
        try:
            total += os.stat(path).st_size
        except OSError:  # not there yet (made by an earlier rule, e.g. the example's)
            pass
        if total >= limit:
            return False
    return True


def batch_threads():
    """Workers of a batch job: execution.threads, else every core of the run."""
    return EXECUTION["threads"] or workflow.cores


def pool_workers():
    """Size of the warm worker pool, the same for every job of this Snakemake
    process: the cores of the run, or execution.threads when larger. Inside a
    SLURM batch job Snakemake gets the --cores of the login-node run (1 with
    profiles/slurm), while SLURM gave the job execution.threads CPUs."""
    return max(workflow.cores, EXECUTION["threads"] or 0)


def batch_resources(batch):
    """Resources of a batch job (a cluster job): its workers' CPUs, memory per
    worker and run time per image (execution.mem_mb_per_worker, minutes_per_image)."""
    threads = batch_threads()  # all of them: the frames of a movie are split among them
    per_worker = -(-len(batch.images) // max(1, threads))
    return {
        "cpus_per_task": threads,
        "mem_mb": 300 + threads * EXECUTION["mem_mb_per_worker"],
        "runtime": int(10 + EXECUTION["minutes_per_image"] * per_worker + 0.999),
    }


def batch_version(plan):
    """Params value: a hash of the batch's plan (images, their files' fingerprints,
    settings): any change reruns exactly this batch."""
    text = repr(sorted((k, sorted(v.items())) for k, v in plan.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


PLANS = {}
#: The steps a batch job runs (their code versions are the batch rule's).
BATCH_STEPS = (
    steps.batch_image,
    steps.batch_part,
    steps.batch_intermediates,
    steps.batch_tables,
    steps.diameter,
)


def run_batch(rule_name, output, log):
    """Run block of a batch rule: the chain of every image of the batch in the
    warm pool (images in parallel; the frames of a movie in parallel when the
    batch has fewer images than workers), then the batch's table shards."""
    dataset, plan = PLANS[rule_name]
    runner.run_batch(
        steps.batch_image,
        {
            name: {k: v for k, v in kw.items() if k != "content"}
            for name, kw in plan.items()
        },
        part=steps.batch_part,
        intermediates=steps.batch_intermediates,
        intermediate_keys=steps.INTERMEDIATES,
        diameter=steps.diameter,
        tables=steps.batch_tables,
        tables_kwargs={
            "objects_shard": output.objects_shard,
            "images_shard": output.images_shard,
            "dataset": dataset,
        },
        frames={name: n_frames(dataset, name) for name in plan},
        splittable=sparams.frames_splittable(config["datasets"][dataset]["segment"]),
        log=log.step,
        log_dir=os.path.splitext(log.step)[0],
        benchmark_dir=f"results/{dataset}/benchmarks/batch",
        record=os.path.splitext(log.step)[0] + ".plan.json",
        record_plan=plan,
        threads=batch_threads(),
        workers=pool_workers(),
    )


# ---- the step call --------------------------------------------------------


def step(function, input, output, params, log):
    """Run ``function`` (a step of snakescope.steps) with the rule's named
    input/output/params as keyword arguments, in the warm worker pool; one-line
    error on failure.

    The worker writes the step's log (log.step) and its benchmark record
    (log.benchmark: wall/CPU time, peak RSS of the step, I/O). Snakemake's own
    benchmark: directive would measure the whole Snakemake process tree with
    psutil for every job, which costs more than the steps themselves here."""
    kwargs = {**dict(input.items()), **dict(output.items())}
    kwargs.update({k: v for k, v in params.items() if k not in ("code", "content")})
    runner.run(
        function,
        kwargs,
        log=log.step,
        benchmark=log.get("benchmark"),
        workers=pool_workers(),
    )


def finish():
    """End of the run (onsuccess/onerror): stop the idle workers now instead of
    waiting for their interpreters to exit, and cancel the scheduler's pending
    re-evaluation timer (Snakemake's job rate limiter starts a 1 s
    threading.Timer after each scheduling round; Python waits for it at exit).
    Together about 2 s of every run."""
    import threading

    runner.shutdown()
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


# ---- targets --------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def qc_images(dataset):
    """Images of {dataset} that get QC images (figures.qc_images: all, or a stable
    sample), computed once per dataset."""
    n = config["figures"]["qc_images"]
    return stable_sample(images(dataset), n=None if n == "all" else n)


@functools.lru_cache(maxsize=None)
def _qc_set(dataset):
    return frozenset(qc_images(dataset))


def figure_targets():
    """Every figure folder of every dataset (target of rule figures)."""
    targets = []
    for name in config["datasets"]:
        targets += expand(rules.qc.output.qc, dataset=name, image=qc_images(name))
        targets += expand(rules.dataset_figures.output.figures_dir, dataset=name)
    return targets


def all_targets():
    """Every final output of every dataset."""
    targets = []
    for name in config["datasets"]:
        ds = config["datasets"][name]
        each = dict(dataset=name, image=images(name))
        tracked = dict(dataset=name, image=tracked_images(name))
        if BATCHED:  # the labels come with the batches the tables need
            targets += batch_shards(name)
        else:
            targets += expand(rules.label.output.labels, **each)
        targets += expand(list(rules.tables.output), dataset=name)
        targets += expand(list(rules.provenance.output), dataset=name)
        if ds["ground_truth"]:
            targets += expand(rules.validation_summary.output.summary, dataset=name)
            if ds["ground_truth_cn"]["table"]:
                targets += expand(rules.cn_summary.output.summary, dataset=name)
            if ds["ground_truth_sizes"]:
                targets += expand(rules.sizes_summary.output.summary, dataset=name)
            if ds["ground_truth_tracks"] and tracked["image"]:
                targets += expand(rules.tracking_summary.output.summary, dataset=name)
        if ds["ground_truth_ctc"] and tracked["image"]:
            targets += expand(rules.ctc_summary.output.summary, dataset=name)
        if tracked["image"]:
            targets += expand(rules.traces.output.traces_table, dataset=name)
            targets += expand(rules.ctc_export.output.ctc, **tracked)
    return targets + figure_targets()


def example_files():
    """Every file the example generator writes (outputs of rule example)."""
    from snakescope.synthetic import example_files as files

    return [str(p) for p in files(config["example"]["outdir"])]


def example_outdir(wildcards, output):
    """Params function: the folder holding every output of rule example."""
    return os.path.commonpath(list(output))
