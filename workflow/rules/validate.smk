# Validation against ground-truth labels (datasets with `ground_truth`).


rule validate_segmentation:
    input:
        labels=rules.label.output.labels,
        truth=ground_truth_path,
    output:
        scores="results/{dataset}/validation/segmentation/{image}.csv",
    params:
        image="{image}",
        code=code_version("validate"),
    log:
        step="results/{dataset}/logs/validate_segmentation/{image}.log",
        benchmark="results/{dataset}/benchmarks/validate_segmentation/{image}.tsv",
    run:
        step("validate_segmentation", input, output, params, log)


rule validation_summary:
    input:
        tables=per_image(rules.validate_segmentation.output.scores),
    output:
        summary="results/{dataset}/validation/segmentation.csv",
    params:
        dataset="{dataset}",
        code=code_version("validate"),
    log:
        step="results/{dataset}/logs/validation_summary.log",
    run:
        step("summarise_validation", input, output, params, log)


rule validate_cn:
    input:
        labels=rules.label.output.labels,
        truth=ground_truth_path,
        ring_table=rules.rings.output.ring_table,
        cn_truth=ground_truth_cn_path,
    output:
        scores="results/{dataset}/validation/cn/{image}.csv",
    params:
        image="{image}",
        column=dataset_key("ground_truth_cn/column"),
        reporter=dataset_key("ground_truth_cn/reporter"),
        code=code_version("validate"),
    log:
        step="results/{dataset}/logs/validate_cn/{image}.log",
    run:
        step("validate_cn", input, output, params, log)


rule cn_summary:
    input:
        tables=per_image(rules.validate_cn.output.scores),
    output:
        summary="results/{dataset}/validation/cn.csv",
    params:
        dataset="{dataset}",
        code=code_version("validate"),
    log:
        step="results/{dataset}/logs/cn_summary.log",
    run:
        step("summarise_cn", input, output, params, log)


rule validate_tracking:
    input:
        ctc=rules.ctc_export.output.ctc,
        truth=ground_truth_path,
        truth_tracks=ground_truth_tracks_path,
    output:
        scores="results/{dataset}/validation/tracking/{image}.csv",
    params:
        image="{image}",
        code=code_version("track"),
    log:
        step="results/{dataset}/logs/validate_tracking/{image}.log",
    run:
        step("validate_tracking", input, output, params, log)


rule tracking_summary:
    input:
        tables=per_tracked_image(rules.validate_tracking.output.scores),
    output:
        summary="results/{dataset}/validation/tracking.csv",
    params:
        dataset="{dataset}",
        code=code_version("track"),
    log:
        step="results/{dataset}/logs/tracking_summary.log",
    run:
        step("summarise_tracking", input, output, params, log)


rule validate_sizes:
    input:
        labels=rules.label.output.labels,
        truth=ground_truth_path,
        measurements=rules.measure.output.measurements,
        sizes_truth=ground_truth_sizes_path,
    output:
        scores="results/{dataset}/validation/sizes/{image}.csv",
    params:
        image="{image}",
        code=code_version("validate", "rods"),
    log:
        step="results/{dataset}/logs/validate_sizes/{image}.log",
    run:
        step("validate_sizes", input, output, params, log)


rule sizes_summary:
    input:
        tables=per_image(rules.validate_sizes.output.scores),
    output:
        summary="results/{dataset}/validation/sizes.csv",
    params:
        dataset="{dataset}",
        code=code_version("validate"),
    log:
        step="results/{dataset}/logs/sizes_summary.log",
    run:
        step("summarise_sizes", input, output, params, log)
