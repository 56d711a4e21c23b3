# Segmentation chain, one file per step and image (a time-lapse is one image:
# its frames are processed inside the job):
#   raw image -> smooth -> threshold (+ table) -> refine -> label


rule diameter:
    input:
        image=image_files,
    output:
        estimate="results/{dataset}/diameter/{image}.csv",
    log:
        step="results/{dataset}/logs/diameter/{image}.log",
    params:
        name="{image}",
        reading=reading,
        channel=segment_key("channel"),
        invert=diameter_invert,
        content=image_fingerprint,
        code=code_version(steps.diameter),
    run:
        step(steps.diameter, input, output, params, log)


rule smooth:
    input:
        unpack(diameter_input),
        image=image_files,
    output:
        smoothed="results/{dataset}/smooth/{image}.tif",
    log:
        step="results/{dataset}/logs/smooth/{image}.log",
        benchmark="results/{dataset}/benchmarks/smooth/{image}.tsv",
    params:
        reading=reading,
        channel=segment_key("channel"),
        diameter=segment_key("diameter"),
        smooth=segment_key("smooth"),
        content=image_fingerprint,
        code=code_version(steps.smooth),
    run:
        step(steps.smooth, input, output, params, log)


rule threshold:
    input:
        unpack(diameter_input),
        smoothed=rules.smooth.output.smoothed,
    output:
        mask="results/{dataset}/threshold/{image}.tif",
        table="results/{dataset}/threshold/{image}.csv",
    log:
        step="results/{dataset}/logs/threshold/{image}.log",
        benchmark="results/{dataset}/benchmarks/threshold/{image}.tsv",
    params:
        image="{image}",
        diameter=segment_key("diameter"),
        threshold=segment_key("threshold"),
        code=code_version(steps.threshold),
    run:
        step(steps.threshold, input, output, params, log)


rule refine:
    input:
        unpack(diameter_input),
        mask=rules.threshold.output.mask,
    output:
        refined="results/{dataset}/refine/{image}.tif",
    log:
        step="results/{dataset}/logs/refine/{image}.log",
        benchmark="results/{dataset}/benchmarks/refine/{image}.tsv",
    params:
        diameter=segment_key("diameter"),
        refine=segment_key("refine"),
        code=code_version(steps.refine),
    run:
        step(steps.refine, input, output, params, log)


rule label:
    input:
        unpack(label_inputs),
    output:
        labels="results/{dataset}/labels/{image}.tif",
        frames="results/{dataset}/labels/{image}.csv",
    log:
        step="results/{dataset}/logs/label/{image}.log",
        benchmark="results/{dataset}/benchmarks/label/{image}.tsv",
    params:
        name="{image}",
        settings=label_settings,
        content=image_fingerprint,
        code=code_version(steps.label),
    run:
        step(steps.label, input, output, params, log)
