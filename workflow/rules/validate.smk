# Validation against ground-truth labels (datasets with `ground_truth`).


rule validate_segmentation:
    input:
        labels=rules.label.output.labels,
        truth=ground_truth("labels"),
    output:
        scores="results/{dataset}/validation/segmentation/{image}.csv",
    log:
        step="results/{dataset}/logs/validate_segmentation/{image}.log",
        benchmark="results/{dataset}/benchmarks/validate_segmentation/{image}.tsv",
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        image="{image}",
        code=code_version(steps.validate_segmentation),
    run:
        step(steps.validate_segmentation, input, output, params, log)


rule validation_summary:
    input:
        tables=per_image(rules.validate_segmentation.output.scores),
    output:
        summary="results/{dataset}/validation/segmentation.csv",
    log:
        step="results/{dataset}/logs/validation_summary.log",
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        dataset="{dataset}",
        code=code_version(steps.validation_summary),
    run:
        step(steps.validation_summary, input, output, params, log)


rule validate_cn:
    input:
        labels=rules.label.output.labels,
        truth=ground_truth("labels"),
        ring_table=rules.rings.output.ring_table,
        cn_truth=ground_truth("cn"),
    output:
        scores="results/{dataset}/validation/cn/{image}.csv",
    log:
        step="results/{dataset}/logs/validate_cn/{image}.log",
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        image="{image}",
        column=dataset_key("ground_truth_cn/column"),
        reporter=dataset_key("ground_truth_cn/reporter"),
        code=code_version(steps.validate_cn),
    run:
        step(steps.validate_cn, input, output, params, log)


rule cn_summary:
    input:
        tables=per_image(rules.validate_cn.output.scores),
    output:
        summary="results/{dataset}/validation/cn.csv",
    log:
        step="results/{dataset}/logs/cn_summary.log",
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        dataset="{dataset}",
        code=code_version(steps.cn_summary),
    run:
        step(steps.cn_summary, input, output, params, log)


rule validate_tracking:
    input:
        ctc=rules.ctc_export.output.ctc,
        truth=ground_truth("labels"),
        truth_tracks=ground_truth("tracks"),
    output:
        scores="results/{dataset}/validation/tracking/{image}.csv",
    log:
        step="results/{dataset}/logs/validate_tracking/{image}.log",
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        image="{image}",
        code=code_version(steps.validate_tracking),
    run:
        step(steps.validate_tracking, input, output, params, log)


rule tracking_summary:
    input:
        tables=per_tracked_image(rules.validate_tracking.output.scores),
    output:
        summary="results/{dataset}/validation/tracking.csv",
    log:
        step="results/{dataset}/logs/tracking_summary.log",
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        dataset="{dataset}",
        code=code_version(steps.tracking_summary),
    run:
        step(steps.tracking_summary, input, output, params, log)


rule validate_sizes:
    input:
        labels=rules.label.output.labels,
        truth=ground_truth("labels"),
        measurements=rules.measure.output.measurements,
        sizes_truth=ground_truth("sizes"),
    output:
        scores="results/{dataset}/validation/sizes/{image}.csv",
    log:
        step="results/{dataset}/logs/validate_sizes/{image}.log",
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        image="{image}",
        code=code_version(steps.validate_sizes),
    run:
        step(steps.validate_sizes, input, output, params, log)


rule sizes_summary:
    input:
        tables=per_image(rules.validate_sizes.output.scores),
    output:
        summary="results/{dataset}/validation/sizes.csv",
    log:
        step="results/{dataset}/logs/sizes_summary.log",
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        dataset="{dataset}",
        code=code_version(steps.sizes_summary),
    run:
        step(steps.sizes_summary, input, output, params, log)


rule validate_ctc:
    input:
        result=rules.ctc_export.output.ctc,
        labels=rules.label.output.labels,
        truth=ground_truth("ctc"),
    output:
        scores="results/{dataset}/validation/ctc/{image}.csv",
    log:
        step="results/{dataset}/logs/validate_ctc/{image}.log",
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        image="{image}",
        code=code_version(steps.validate_ctc),
    run:
        step(steps.validate_ctc, input, output, params, log)


rule ctc_summary:
    input:
        tables=per_tracked_image(rules.validate_ctc.output.scores),
    output:
        summary="results/{dataset}/validation/ctc.csv",
    log:
        step="results/{dataset}/logs/ctc_summary.log",
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        dataset="{dataset}",
        code=code_version(steps.ctc_summary),
    run:
        step(steps.ctc_summary, input, output, params, log)
