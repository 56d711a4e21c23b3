# Provenance: what produced a dataset's results (config, versions, input checksums).


rule provenance:
    input:
        images=dataset_images,
        ground_truth=dataset_ground_truth,
    output:
        config=report(
            "results/{dataset}/provenance/config.yaml",
            caption="../report/provenance.rst",
            category="{dataset}",
            subcategory="Provenance",
        ),
        versions="results/{dataset}/provenance/versions.yaml",
        checksums="results/{dataset}/provenance/inputs.csv",
    log:
        step="results/{dataset}/logs/provenance.log",
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        dataset=dataset_config,
        software=provenance.software_versions(),
        content=dataset_fingerprint,
        code=code_version(steps.provenance),
    run:
        step(steps.provenance, input, output, params, log)
