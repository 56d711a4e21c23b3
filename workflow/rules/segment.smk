# Segmentation chain, one file per step and image (a time-lapse is one image:
# its frames are processed inside the job):
#   raw image -> smooth -> threshold (+ table) -> refine -> label


rule smooth:
    input:
        image=image_path,
    output:
        smoothed="results/{dataset}/smooth/{image}.tif",
    params:
        reading=reading,
        channel=segment_key("channel"),
        diameter=segment_key("diameter"),
        smooth=segment_key("smooth"),
        code=code_version("segment", "params"),
    log:
        step="results/{dataset}/logs/smooth/{image}.log",
        benchmark="results/{dataset}/benchmarks/smooth/{image}.tsv",
    run:
        step("smooth", input, output, params, log)


rule threshold:
    input:
        smoothed=rules.smooth.output.smoothed,
    output:
        mask="results/{dataset}/threshold/{image}.tif",
        table="results/{dataset}/threshold/{image}.csv",
    params:
        image="{image}",
        diameter=segment_key("diameter"),
        threshold=segment_key("threshold"),
        code=code_version("segment", "params"),
    log:
        step="results/{dataset}/logs/threshold/{image}.log",
        benchmark="results/{dataset}/benchmarks/threshold/{image}.tsv",
    run:
        step("threshold", input, output, params, log)


rule refine:
    input:
        mask=rules.threshold.output.mask,
    output:
        refined="results/{dataset}/refine/{image}.tif",
    params:
        diameter=segment_key("diameter"),
        refine=segment_key("refine"),
        code=code_version("segment", "params"),
    log:
        step="results/{dataset}/logs/refine/{image}.log",
        benchmark="results/{dataset}/benchmarks/refine/{image}.tsv",
    run:
        step("refine", input, output, params, log)


rule label:
    input:
        unpack(label_inputs),
    output:
        labels="results/{dataset}/labels/{image}.tif",
        frames="results/{dataset}/labels/{image}.csv",
    params:
        name="{image}",
        method=segment_key("method"),
        diameter=segment_key("diameter"),
        split=segment_key("split"),
        refine=segment_key("refine"),
        log_edges=segment_key("log_edges"),
        model=segment_key("model"),
        reading=reading,
        channel=segment_key("channel"),
        code=code_version("segment", "params", "rods"),
    log:
        step="results/{dataset}/logs/label/{image}.log",
        benchmark="results/{dataset}/benchmarks/label/{image}.tsv",
    run:
        step("label", input, output, params, log)
