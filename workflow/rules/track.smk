# Tracking of time-lapses, per-cell traces, Cell Tracking Challenge export.


rule track:
    input:
        unpack(diameter_input),
        labels=rules.label.output.labels,
        measurements=rules.measure.output.measurements,
    output:
        tracks="results/{dataset}/tracks/{image}.csv",
        track_labels="results/{dataset}/tracks/{image}.tif",
    log:
        step="results/{dataset}/logs/track/{image}.log",
        benchmark="results/{dataset}/benchmarks/track/{image}.tsv",
    params:
        name="{image}",
        diameter=segment_key("diameter"),
        track=dataset_key("track"),
        code=code_version(steps.track),
    run:
        step(steps.track, input, output, params, log)


rule ctc_export:
    input:
        track_labels=rules.track.output.track_labels,
        tracks=rules.track.output.tracks,
    output:
        ctc=directory("results/{dataset}/ctc/{image}"),
    log:
        step="results/{dataset}/logs/ctc_export/{image}.log",
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        code=code_version(steps.ctc_export),
    run:
        step(steps.ctc_export, input, output, params, log)


rule traces:
    input:
        objects=rules.tables.output.objects,
        tracks=per_tracked_image(rules.track.output.tracks),
    output:
        traces_table="results/{dataset}/tables/traces.csv",
        traces_parquet="results/{dataset}/tables/traces.parquet",
    log:
        step="results/{dataset}/logs/traces.log",
    priority: 1  # the dataset's chain to the figures, ahead of QC and provenance
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        images=tracked_image_names,
        traces=dataset_key("traces"),
        metadata=dataset_metadata,
        code=code_version(steps.traces),
    run:
        step(steps.traces, input, output, params, log)
