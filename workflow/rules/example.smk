# The embedded synthetic example with ground truth (snakescope.synthetic).


rule example:
    output:
        files=example_files(),
    params:
        outdir=example_outdir,
        seed=lookup(dpath="example/seed", within=config),
        code=code_version("synthetic"),
    log:
        step="results/logs/example.log",
    run:
        step("example", input, output, params, log)
