# Per-object measurements, cytoplasmic rings and C/N ratios, dataset tables.


rule measure:
    input:
        image=image_files,
        labels=rules.label.output.labels,
    output:
        measurements="results/{dataset}/measurements/{image}.csv",
    log:
        step="results/{dataset}/logs/measure/{image}.log",
        benchmark="results/{dataset}/benchmarks/measure/{image}.tsv",
    params:
        name="{image}",
        reading=reading,
        saturation=dataset_key("saturation"),
        rods=is_rods,
        content=image_fingerprint,
        code=code_version(steps.measure),
    run:
        step(steps.measure, input, output, params, log)


rule rings:
    input:
        unpack(diameter_input),
        image=image_files,
        labels=rules.label.output.labels,
    output:
        ring_labels="results/{dataset}/rings/{image}.tif",
        ring_table="results/{dataset}/rings/{image}.csv",
    log:
        step="results/{dataset}/logs/rings/{image}.log",
        benchmark="results/{dataset}/benchmarks/rings/{image}.tsv",
    params:
        name="{image}",
        reading=reading,
        channel=segment_key("channel"),
        diameter=segment_key("diameter"),
        rings=dataset_key("rings"),
        content=image_fingerprint,
        code=code_version(steps.rings),
    run:
        step(steps.rings, input, output, params, log)


rule tables:
    input:
        unpack(table_inputs),
    output:
        objects="results/{dataset}/tables/objects.csv",
        images="results/{dataset}/tables/images.csv",
        objects_parquet="results/{dataset}/tables/objects.parquet",
        images_parquet="results/{dataset}/tables/images.parquet",
    log:
        step="results/{dataset}/logs/tables.log",
    priority: 1  # the dataset's chain to the figures, ahead of QC and provenance
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        dataset="{dataset}",
        metadata=dataset_metadata,
        code=code_version(steps.tables),
    run:
        step(steps.tables, input, output, params, log)
