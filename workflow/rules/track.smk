# Tracking of time-lapses, per-cell traces, Cell Tracking Challenge export.


rule track:
    input:
        labels=rules.label.output.labels,
        measurements=rules.measure.output.measurements,
    output:
        tracks="results/{dataset}/tracks/{image}.csv",
        track_labels="results/{dataset}/tracks/{image}.tif",
    params:
        name="{image}",
        diameter=segment_key("diameter"),
        track=dataset_key("track"),
        code=code_version(steps.track),
    log:
        step="results/{dataset}/logs/track/{image}.log",
        benchmark="results/{dataset}/benchmarks/track/{image}.tsv",
    run:
        step(steps.track, input, output, params, log)


rule ctc_export:
    input:
        track_labels=rules.track.output.track_labels,
        tracks=rules.track.output.tracks,
    output:
        ctc=directory("results/{dataset}/ctc/{image}"),
    params:
        code=code_version(steps.ctc_export),
    log:
        step="results/{dataset}/logs/ctc_export/{image}.log",
    run:
        step(steps.ctc_export, input, output, params, log)


rule traces:
    input:
        objects=rules.tables.output.objects,
        tracks=per_tracked_image(rules.track.output.tracks),
    output:
        traces_table="results/{dataset}/tables/traces.csv",
    params:
        images=tracked_image_names,
        traces=dataset_key("traces"),
        code=code_version(steps.traces),
    log:
        step="results/{dataset}/logs/traces.log",
    run:
        step(steps.traces, input, output, params, log)
