# Figures and QC images; the target `figures` regenerates every figure.


rule qc:
    input:
        unpack(qc_threshold_inputs),
        image=image_files,
        labels=rules.label.output.labels,
        ring_labels=rules.rings.output.ring_labels,
        tracks=tracks_of_image,
    output:
        qc=report(
            directory("results/{dataset}/figures/qc/{image}"),
            patterns=["{name}.png"],
            caption="../report/qc.rst",
            category="{dataset}",
            subcategory="QC: {image}",
        ),
    log:
        step="results/{dataset}/logs/qc/{image}.log",
        benchmark="results/{dataset}/benchmarks/qc/{image}.tsv",
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        name="{image}",
        reading=reading,
        channel=segment_key("channel"),
        figures_settings=figures_settings(),
        content=qc_fingerprint,
        code=code_version(steps.qc),
    run:
        step(steps.qc, input, output, params, log)


rule dataset_figures:
    input:
        objects=rules.tables.output.objects,
        images=rules.tables.output.images,
        traces=traces_of_dataset,
    output:
        figures_dir=report(
            directory("results/{dataset}/figures/dataset"),
            patterns=["{name}.png"],
            caption="../report/dataset_figures.rst",
            category="{dataset}",
            subcategory="Figures",
        ),
    log:
        step="results/{dataset}/logs/dataset_figures.log",
        benchmark="results/{dataset}/benchmarks/dataset_figures.tsv",
    priority: 1  # the dataset's chain to the figures, ahead of QC and provenance
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        dataset="{dataset}",
        figures_settings=figures_settings(),
        conditions=figure_groups,
        stimulus_frame=dataset_key("stimulus_frame"),
        baseline_frames=dataset_key("traces/baseline_frames"),
        content=style_fingerprint(),
        code=code_version(steps.dataset_figures),
    run:
        step(steps.dataset_figures, input, output, params, log)


rule figures:
    input:
        figure_targets(),
