# snakescope: quantitative microscopy of cells with Snakemake.
# Run from the repository root:  .venv/bin/snakemake --cores 2 [--configfile my.yaml]
# The workflow profile workflow/profiles/default sets the execution model
# (warm worker pool behind one-line run: blocks) and the default config file.


include: "workflow/rules/common.smk"


report: "workflow/report/workflow.rst"


wildcard_constraints:
    dataset=r"[A-Za-z0-9_-]+",
    image=r"[^/]+",


include: "workflow/rules/example.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/track.smk"
include: "workflow/rules/batch.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/figures.smk"


onstart:
    runner.resume_garbage_collection()


onsuccess:
    finish()


onerror:
    finish()


rule all:
    default_target: True
    input:
        all_targets(),
