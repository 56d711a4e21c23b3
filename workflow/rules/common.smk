# Helpers shared by all rule files (config validation, dataset and image discovery,
# parameter lookup) and the call into the warm worker pool (snakescope.runner).
# Rule files stay declarative: named input/output/params/log/benchmark and a
# one-line run: block calling one library step by name.

import hashlib
import os
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

import yaml

sys.path.insert(0, workflow.basedir)  # the library next to the Snakefile, installed or not
import snakescope
from snakescope import io as sio
from snakescope import runner
from snakescope.config import check_config, load_yaml_strict
from snakescope.errors import InputError


def _fail(message):
    """Stop the workflow with one line naming the config key or file (no traceback)."""
    print(f"snakescope error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


SCHEMA = workflow.source_path("../schemas/config.schema.yaml")
try:
    for _path in workflow.configfiles:
        load_yaml_strict(str(_path))  # duplicate keys (e.g. two datasets of one name)
    with open(SCHEMA) as fh:
        check_config(config, yaml.safe_load(fh))
except InputError as exc:
    _fail(str(exc))
validate(config, schema="../schemas/config.schema.yaml", set_default=True)


def _discover(name, ds):
    """Map image name -> path for one dataset."""
    images = ds["images"]
    if isinstance(images, str):
        # {image} matches within one folder (not sub-folders such as gt/)
        found = [i for i in glob_wildcards(images).image if "/" not in i]
        if not found:
            _fail(
                f"config key datasets.{name}.images: pattern {images!r} matches no file; "
                "check the path (relative to the directory you run snakemake in)"
            )
        return {i: images.format(image=i) for i in sorted(set(found))}
    out = {}
    for path in images:
        key = sio.image_name(path)
        if key in out:
            _fail(
                f"config key datasets.{name}.images: two files named {key!r} ({out[key]}, {path}); "
                "rename one, image names must be unique within a dataset"
            )
        out[key] = path
    return out


DATASETS = {name: _discover(name, ds) for name, ds in config["datasets"].items()}


def images(dataset):
    """Sorted image names of a dataset."""
    return sorted(DATASETS[dataset])


def image_path(wildcards):
    """Input function: the raw image file of {dataset}/{image}."""
    try:
        return DATASETS[wildcards.dataset][wildcards.image]
    except KeyError:
        _fail(f"image {wildcards.image!r} is not in dataset {wildcards.dataset!r}")


def ground_truth_path(wildcards):
    """Input function: the ground-truth label image of {dataset}/{image}."""
    return config["datasets"][wildcards.dataset]["ground_truth"].format(image=wildcards.image)


def per_image(pattern):
    """Input function: ``pattern`` expanded over every image of {dataset}."""

    def inputs(wildcards):
        return expand(pattern, dataset=wildcards.dataset, image=images(wildcards.dataset))

    return inputs


def example_files():
    """Every file the example generator writes (outputs of rule example)."""
    from snakescope.synthetic import example_files as files

    return [str(p) for p in files(config["example"]["outdir"])]


def example_outdir(wildcards, output):
    """Params function: the folder holding every output of rule example."""
    return os.path.commonpath(list(output))


def ground_truth_cn_path(wildcards):
    """Input function: the ground-truth C/N table of {dataset}/{image}."""
    return config["datasets"][wildcards.dataset]["ground_truth_cn"]["table"].format(image=wildcards.image)


_frames_cache = {}


def tracked_images(dataset):
    """Images of {dataset} that are tracked: all (track.enabled true), none
    (false), or those with more than one frame (auto; read from the headers)."""
    ds = config["datasets"][dataset]
    enabled = ds["track"]["enabled"]
    if enabled is True or enabled is False:
        return images(dataset) if enabled else []
    out = []
    for name in images(dataset):
        path = DATASETS[dataset][name]
        if path not in _frames_cache:
            if not os.path.exists(path):
                _fail(
                    f"config key datasets.{dataset}.track.enabled: 'auto' needs the image {path} to exist "
                    "when the workflow starts; set it to true (time-lapses) or false (stills)"
                )
            try:
                _frames_cache[path] = sio.frame_count(path, axes=ds["axes"])
            except InputError as exc:
                _fail(str(exc))
        if _frames_cache[path] > 1:
            out.append(name)
    return out


def dataset_images(wildcards):
    """Input function: every raw image of {dataset}."""
    return [DATASETS[wildcards.dataset][i] for i in images(wildcards.dataset)]


def dataset_ground_truth(wildcards):
    """Input function: every ground-truth file of {dataset} (labels and C/N tables)."""
    ds = config["datasets"][wildcards.dataset]
    files = []
    for pattern in (ds["ground_truth"], ds["ground_truth_cn"]["table"]):
        if pattern:
            files += [pattern.format(image=i) for i in images(wildcards.dataset)]
    return files


def software_versions():
    """Versions of Python, snakescope (and a hash of its code) and the packages it uses."""
    from importlib import metadata

    versions = {"python": sys.version.split()[0], "snakescope": snakescope.__version__,
                "snakescope_code": code_version(*[p.stem for p in Path(snakescope.__file__).parent.glob("*.py")])}
    for package in ("snakemake", "numpy", "scipy", "scikit-image", "tifffile", "pandas", "matplotlib",
                    "PyYAML", "laptrack", "py-ctcmetrics"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def reading(wildcards):
    """Params function: how to read the raw images of {dataset}."""
    ds = config["datasets"][wildcards.dataset]
    return {k: ds[k] for k in ("axes", "channels", "pixel_size_um", "frame_interval_s")}


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


def dataset_config(wildcards):
    """Params function: the whole (resolved) config of {dataset}."""
    return config["datasets"][wildcards.dataset]


def segment_key(key):
    """Params function: datasets/{dataset}/segment/<key> from the config."""
    return dataset_key(f"segment/{key}")


_code_cache = {}


def code_version(*modules):
    """Hash of the library modules a step runs: changing their code reruns the step
    (Snakemake's own code trigger only sees the run: block)."""
    key = tuple(sorted(set(modules) | {"steps", "io", "runner"}))
    if key not in _code_cache:
        h = hashlib.sha256()
        root = Path(snakescope.__file__).parent
        for m in key:
            h.update((root / f"{m}.py").read_bytes())
        _code_cache[key] = h.hexdigest()[:16]
    return _code_cache[key]


def step(name, input, output, params, log):
    """Run snakescope.steps.<name> with the rule's named input/output/params as
    keyword arguments, in the warm worker pool; one-line error on failure.

    The worker writes the step's log (log.step) and its benchmark record
    (log.benchmark: wall/CPU time, peak RSS of the step, I/O). Snakemake's own
    benchmark: directive would measure the whole Snakemake process tree with
    psutil for every job, which costs more than the steps themselves here."""
    kwargs = {**dict(input.items()), **dict(output.items())}
    kwargs.update({k: v for k, v in params.items() if k != "code"})
    runner.run(name, kwargs, log=log.step, benchmark=log.get("benchmark"), workers=workflow.cores)


def per_tracked_image(pattern):
    """Input function: ``pattern`` expanded over the tracked images of {dataset}."""

    def inputs(wildcards):
        return expand(pattern, dataset=wildcards.dataset, image=tracked_images(wildcards.dataset))

    return inputs


def tracked_image_names(wildcards):
    """Params function: names of the tracked images of {dataset}, in input order."""
    return tracked_images(wildcards.dataset)


def ground_truth_sizes_path(wildcards):
    """Input function: the ground-truth rod sizes table of {dataset}/{image}."""
    return config["datasets"][wildcards.dataset]["ground_truth_sizes"].format(image=wildcards.image)


def ground_truth_tracks_path(wildcards):
    """Input function: the ground-truth man_track.txt of {dataset}/{image}."""
    return config["datasets"][wildcards.dataset]["ground_truth_tracks"].format(image=wildcards.image)


def figures_settings():
    """The figures section, with the style file found next to the workflow when
    it is not in the working directory (runs with --directory elsewhere)."""
    settings = dict(config["figures"])
    style = settings["style"]
    if not os.path.exists(style) and not os.path.isabs(style):
        candidate = os.path.join(workflow.basedir, style)
        if os.path.exists(candidate):
            settings["style"] = candidate
    return settings


def segment_method(dataset):
    return config["datasets"][dataset]["segment"]["method"]


def label_inputs(wildcards):
    """Input function (unpacked): what rule label reads for the dataset's method."""
    method = segment_method(wildcards.dataset)
    if method == "threshold":
        return {
            "mask": rules.refine.output.refined.format(**wildcards),
            "smoothed": rules.smooth.output.smoothed.format(**wildcards),
            "thresholds": rules.threshold.output.table.format(**wildcards),
        }
    inputs = {"image": image_path(wildcards)}
    if method == "labels":
        pattern = config["datasets"][wildcards.dataset]["segment"]["labels"]
        if not pattern:
            _fail(f"config key datasets.{wildcards.dataset}.segment.labels: method 'labels' needs the pattern "
                  "of the label images, e.g. 'labels/{image}_labels.tif'")
        inputs["external"] = pattern.format(image=wildcards.image)
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
    if wildcards.image in tracked_images(wildcards.dataset):
        return f"results/{wildcards.dataset}/tracks/{wildcards.image}.csv"
    return []


def traces_of_dataset(wildcards):
    """Input function: the dataset's traces table when it has tracked images."""
    if tracked_images(wildcards.dataset):
        return f"results/{wildcards.dataset}/tables/traces.csv"
    return []


def figure_targets():
    """Every figure folder of every dataset (target of rule figures)."""
    targets = []
    for name in config["datasets"]:
        targets += expand("results/{dataset}/figures/qc/{image}", dataset=name, image=images(name))
        targets.append(f"results/{name}/figures/dataset")
    return targets


def all_targets():
    """Every final output of every dataset."""
    targets = []
    for name in config["datasets"]:
        ds = config["datasets"][name]
        targets += expand("results/{dataset}/labels/{image}.tif", dataset=name, image=images(name))
        targets += [f"results/{name}/tables/objects.csv", f"results/{name}/tables/images.csv"]
        targets += [f"results/{name}/provenance/{f}" for f in ("config.yaml", "versions.yaml", "inputs.csv")]
        if ds["ground_truth"]:
            targets.append(f"results/{name}/validation/segmentation.csv")
            if ds["ground_truth_cn"]["table"]:
                targets.append(f"results/{name}/validation/cn.csv")
            if ds["ground_truth_sizes"]:
                targets.append(f"results/{name}/validation/sizes.csv")
            if ds["ground_truth_tracks"] and tracked_images(name):
                targets.append(f"results/{name}/validation/tracking.csv")
        if tracked_images(name):
            targets.append(f"results/{name}/tables/traces.csv")
            targets += expand("results/{dataset}/ctc/{image}", dataset=name, image=tracked_images(name))
    return targets + figure_targets()
